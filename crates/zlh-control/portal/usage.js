// Live usage from the servers' statuses: CPU as a share of one core (from the CPU seconds two
// polls apart), memory, disk against its limit, network rates; and small graphs of the last
// two minutes. Agents report totals; rates are what changed between two of them.

import { h, size } from './dom.js';

/** What one server uses now, from its status and the previous sample. */
export function usageTracker() {
  const last = new Map();
  return (server) => {
    const detail = server.status?.detail;
    if (!detail || server.status.unreachable) return null;
    const usage = detail.usage ?? {};
    const cpuSeconds = usage.cpuSeconds ?? detail.resources?.cpuSeconds;
    const now = performance.now();
    const before = last.get(server.id);
    const sample = {
      at: now,
      cpuSeconds,
      rx: usage.networkRxBytes,
      tx: usage.networkTxBytes,
      memory: usage.memoryBytes ?? detail.resources?.memoryBytes ?? null,
      disk: usage.disk ?? null,
      cpu: null,
      rxRate: null,
      txRate: null,
    };
    const seconds = before ? (now - before.at) / 1000 : 0;
    if (before && seconds > 0.5) {
      if (cpuSeconds != null && before.cpuSeconds != null) sample.cpu = Math.max(0, ((cpuSeconds - before.cpuSeconds) / seconds) * 100);
      if (sample.rx != null && before.rx != null) sample.rxRate = Math.max(0, (sample.rx - before.rx) / seconds);
      if (sample.tx != null && before.tx != null) sample.txRate = Math.max(0, (sample.tx - before.tx) / seconds);
    } else if (before) {
      // Polled again too soon to tell a rate: keep the last one.
      Object.assign(sample, { cpu: before.cpu, rxRate: before.rxRate, txRate: before.txRate, at: before.at, cpuSeconds: before.cpuSeconds, rx: before.rx, tx: before.tx });
    }
    last.set(server.id, sample);
    return sample;
  };
}

/** One line of numbers for a list: `CPU 12% · 340 MiB`. */
export function usageText(sample) {
  if (!sample) return '';
  const parts = [];
  if (sample.cpu != null) parts.push(`CPU ${sample.cpu.toFixed(0)}%`);
  if (sample.memory != null) parts.push(size(sample.memory));
  if (sample.disk) parts.push(`disk ${size(sample.disk.usedBytes)} of ${size(sample.disk.limitBytes)}`);
  return parts.join(' · ');
}

/** A small line graph of `values` (the newest last), scaled to `max` or their largest; none
 * until there are two points to join. */
export function sparkline(label, values, max) {
  if (values.length < 2) return null;
  const width = 160;
  const height = 36;
  const top = Math.max(max ?? 0, ...values, 1);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / top) * (height - 2) - 1).toFixed(1)}`).join(' ');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.classList.add('spark');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', points);
  svg.append(line);
  return svg;
}

/** The server page's usage panel: numbers and the last two minutes as graphs. */
export function usagePanel() {
  const history = { cpu: [], memory: [] };
  const element = h('div', { class: 'usage', 'aria-live': 'off' });
  const update = (sample, limits) => {
    if (!sample) {
      element.replaceChildren();
      return;
    }
    for (const [key, value] of [['cpu', sample.cpu], ['memory', sample.memory]]) {
      if (value == null) continue;
      history[key].push(value);
      history[key].splice(0, history[key].length - 60);
    }
    const cell = (name, text, graph) => h('div', { class: 'usage-cell' }, h('span', { class: 'muted' }, name), h('strong', {}, text), graph);
    element.replaceChildren(...[
      cell('CPU', sample.cpu == null ? '…' : `${sample.cpu.toFixed(0)}%`, sparkline('CPU over the last two minutes', history.cpu, limits ? limits.cpus * 100 : 100)),
      cell('Memory', sample.memory == null ? '—' : size(sample.memory) + (limits ? ` of ${limits.memoryMb} MiB` : ''),
        sparkline('Memory over the last two minutes', history.memory, limits ? limits.memoryMb * 1048576 : undefined)),
      sample.disk ? cell('Disk', `${size(sample.disk.usedBytes)} of ${size(sample.disk.limitBytes)}`) : null,
      sample.rxRate != null ? cell('Network', `↓ ${size(sample.rxRate)}/s · ↑ ${size(sample.txRate ?? 0)}/s`) : null,
    ].filter(Boolean));
  };
  return { element, update };
}
