// One server's page: power, console, files, backups, mods, crashes, and for dev servers
// code-server and the IDE. Tabs are `#/servers/<id>/<tab>` so a reload keeps the place.

import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';
import { api, download, followJob, upload } from './api.js';
import { confirmDialog, field, h, mount, notice, progressBar, promptDialog, size, when } from './dom.js';
import { usagePanel, usageTracker } from './usage.js';

const TEXT_LIMIT = 1 << 20;
/** The tab to focus when the page it opened is drawn (after a keyboard move). */
let focusTab = null;

export async function serverPage(id, tab, app) {
  let server = await api('GET', `/api/servers/${id}`);
  const isDev = server.type === 'dev';
  // Each tab shows where the asking account may use it: all of them for the owner, what the
  // owner granted for an invited account.
  const may = (permission) => server.permissions.includes(permission);
  const tabs = [
    ['console', 'Console', 'console'],
    ['files', 'Files', 'files'],
    ...(isDev ? [['ide', 'IDE', 'ide']] : [['setup', 'Setup', 'manage'], ['backups', 'Backups', 'backups'], ['mods', 'Mods', 'files']]),
    ['crashes', 'Crashes', 'console'],
    ...(isDev ? [] : [['schedules', 'Schedules', 'schedules']]),
    ['users', 'Users', 'manage'],
  ].filter(([, , permission]) => may(permission));
  const current = tabs.find(([name]) => name === tab)?.[0] ?? tabs[0]?.[0];
  const badge = h('span', { id: 'server-state' }, app.stateBadge(server));
  const status = h('div', { 'aria-live': 'polite' });
  const panel = h('section', { id: 'tab-panel', role: 'tabpanel', 'aria-labelledby': `tab-${current}` });

  // Power buttons follow the state: only what can be done now is enabled, and nothing while
  // an action is on its way.
  let acting = false;
  const buttons = {
    start: h('button', { type: 'button' }, 'Start'),
    stop: h('button', { type: 'button' }, 'Stop'),
    restart: h('button', { type: 'button' }, 'Restart'),
    // Offered while a stop takes its time: SIGKILL now instead of waiting for it.
    kill: h('button', { type: 'button', class: 'danger', hidden: true }, 'Kill'),
  };
  const enableButtons = () => {
    const state = server.status?.state;
    const busy = acting || server.lifecycle !== 'ready' || state === 'stopping' || state === 'installing';
    buttons.start.disabled = busy || state === 'running' || state === 'starting' || Boolean(server.install);
    buttons.stop.disabled = busy || ['stopped', 'error'].includes(state);
    buttons.restart.disabled = busy || Boolean(server.install);
    buttons.kill.hidden = state !== 'stopping' || !may('power');
    buttons.kill.disabled = acting;
  };
  const said = {
    start: { starting: 'Starting…', running: 'It is already running.' },
    stop: { stopping: 'Stopping…', stopped: 'It is already stopped.' },
    restart: { stopping: 'Restarting…', starting: 'Restarting…', running: 'Restarting…' },
    kill: { stopping: 'Killed: it stops now.' },
  };
  const flash = (element) => {
    mount(status, element);
    // A success says its piece and goes; an error stays until the next action.
    setTimeout(() => { if (status.firstChild === element) mount(status); }, 5000);
  };
  const power = (action) => async () => {
    mount(status);
    acting = true;
    enableButtons();
    try {
      const accepted = await api('POST', `/api/servers/${id}/${action}`);
      flash(notice('ok', said[action][accepted.state] ?? `${action[0].toUpperCase()}${action.slice(1)} requested.`));
      await refresh();
    } catch (error) {
      mount(status, app.problem(error));
    } finally {
      acting = false;
      enableButtons();
    }
  };
  for (const [action, button] of Object.entries(buttons)) {
    button.onclick = power(action);
    if (!may('power')) button.hidden = true;
  }
  const remove = async () => {
    if (!(await confirmDialog('Delete server', `${server.name} is stopped and its files, backups and agent are removed for good.`, 'Delete server'))) return;
    try {
      await api('DELETE', `/api/servers/${id}`);
      app.go('#/servers');
    } catch (error) {
      mount(status, app.problem(error));
    }
  };

  const track = usageTracker();
  const usage = usagePanel();
  // A crashed server that will restart says when, to the second.
  const restartNote = h('p', { class: 'muted', 'aria-live': 'polite' });
  const countdown = () => {
    const at = server.status?.state === 'crashed' ? server.status?.detail?.nextRestartAt : null;
    const seconds = at ? Math.max(0, Math.ceil((Date.parse(at) - Date.now()) / 1000)) : null;
    const wait = seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
    restartNote.textContent = seconds == null ? '' : `It crashed; it restarts in ${wait}.`;
  };
  const refresh = async () => {
    try {
      server = await api('GET', `/api/servers/${id}`);
      mount(badge, app.stateBadge(server));
      enableButtons();
      usage.update(track(server), server.limits);
      countdown();
    } catch {
      // The next refresh tries again; errors of actions are shown where they happen.
    }
  };
  usage.update(track(server), server.limits);
  const timer = setInterval(refresh, 2000);
  const ticker = setInterval(countdown, 1000);
  app.onLeave(() => {
    clearInterval(timer);
    clearInterval(ticker);
  });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(server.address);
      flash(notice('ok', `Copied ${server.address}.`));
    } catch {
      mount(status, notice('info', `The browser did not allow copying; the address is ${server.address}.`));
    }
  };

  // Arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern); the page is
  // drawn again, so the newly selected tab takes the focus once it is there.
  const tabKeys = (event) => {
    const at = tabs.findIndex(([name]) => name === current);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    focusTab = tabs[(to + tabs.length) % tabs.length][0];
    app.go(`#/servers/${id}/${focusTab}`);
  };
  if (focusTab === current) {
    focusTab = null;
    requestAnimationFrame(() => document.getElementById(`tab-${current}`)?.focus());
  }

  enableButtons();
  const views = { console: consoleTab, files: filesTab, setup: setupTab, backups: backupsTab, mods: modsTab, crashes: crashesTab, ide: ideTab, users: usersTab, schedules: schedulesTab };
  mount(panel, current
    ? await views[current](id, server, app)
    : h('p', { class: 'muted' }, 'Its owner shared this server with you to watch: its state and usage are above.'));

  return [
    h('div', { class: 'row' },
      h('h1', {}, server.name, ' ', badge),
      h('div', { class: 'actions' },
        buttons.start, buttons.stop, buttons.restart, buttons.kill,
        may('manage') ? h('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete') : null)),
    h('p', { class: 'muted' }, isDev ? `Dev container · ${server.runtime} ${server.version ?? ''}` : `Game server · ${server.template ?? 'custom command'}`,
      server.address ? [' · players connect to ', h('code', { class: 'address' }, server.address),
        h('button', { type: 'button', class: 'copy', 'aria-label': 'Copy the address players connect to', onclick: copy }, 'Copy')] : null),
    may('manage') ? null : h('p', { class: 'muted shared-note' }, server.permissions.length
      ? `Shared with you: you may use ${server.permissions.join(', ')}.`
      : 'Shared with you to watch.'),
    usage.element,
    restartNote,
    server.limits ? h('p', { class: 'muted limits' },
      `Limits: ${server.limits.memoryMb} MiB memory · ${server.limits.cpus} CPUs · ${server.limits.pids} processes`) : null,
    status,
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Server sections', onkeydown: tabKeys },
      tabs.map(([name, label]) => h('button', {
        type: 'button', role: 'tab', id: `tab-${name}`, 'aria-selected': String(name === current),
        tabindex: name === current ? '0' : '-1',
        onclick: () => app.go(`#/servers/${id}/${name}`),
      }, label))),
    panel,
  ];
}

/**
 * Shows the list at `path` in `list`: the problem if it cannot be read, `empty` when there is
 * nothing, what `render(items)` makes otherwise. Resolves to the items (`null` after a problem).
 */
async function showList(app, list, path, empty, render) {
  let items;
  try {
    items = await api('GET', path);
  } catch (error) {
    mount(list, app.problem(error));
    return null;
  }
  mount(list, items.length ? render(items) : h('p', { class: 'muted' }, empty));
  return items;
}

/** The console: a real terminal on the server's PTY, resuming where it left off. */
function consoleTab(id, server, app) {
  const element = h('div', { class: 'terminal', role: 'region', 'aria-label': 'Console' });
  const state = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Connecting…');
  const command = h('input', { autocomplete: 'off', placeholder: 'say hello', 'aria-label': 'Console command' });
  const line = h('form', { class: 'console-line' }, command, h('button', { type: 'submit' }, 'Send'));
  const terminal = new Terminal({ convertEol: false, scrollback: 5000, fontSize: 14, cursorBlink: true });
  const fit = new FitAddon();
  terminal.loadAddon(fit);
  let socket = null;
  let next = null;
  let closed = false;
  let retry = 500;
  let retryTimer = null;
  const send = (message) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };

  const connect = async () => {
    if (closed) return;
    try {
      const { ticket } = await api('POST', `/api/servers/${id}/console/ticket`);
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const since = next === null ? '' : `&since=${next}`;
      socket = new WebSocket(`${scheme}://${location.host}/api/servers/${id}/console?ticket=${encodeURIComponent(ticket)}${since}`);
      socket.binaryType = 'arraybuffer';
      socket.addEventListener('open', () => {
        retry = 500;
        state.textContent = 'Connected.';
        send({ type: 'resize', cols: terminal.cols, rows: terminal.rows });
      });
      socket.addEventListener('message', (event) => {
        if (typeof event.data === 'string') {
          const message = JSON.parse(event.data);
          if (message.type === 'gap') terminal.write(`\r\n\x1b[33m[… ${message.to - message.from} bytes of output were missed …]\x1b[0m\r\n`);
          if (message.type === 'state' || message.type === 'hello') state.textContent = `Connected · the server is ${message.state}.`;
          return;
        }
        // Output: an 8-byte big-endian offset, then the bytes.
        const view = new DataView(event.data);
        const offset = Number(view.getBigUint64(0));
        const bytes = new Uint8Array(event.data, 8);
        terminal.write(bytes);
        next = offset + bytes.length;
      });
      socket.addEventListener('close', (event) => {
        if (closed) return;
        state.textContent = 'Disconnected; reconnecting…';
        // 1012: the control plane is restarting, and another one answers now.
        const restarting = event.code === 1012;
        retryTimer = setTimeout(connect, restarting ? 0 : retry);
        if (!restarting) retry = Math.min(retry * 2, 10_000);
      });
    } catch (error) {
      if (closed) return;
      // Access ended (the owner took it back): retrying would not bring it back.
      if (error.status === 403 || error.status === 404) {
        closed = true;
        state.textContent = `The console closed: ${error.message}.`;
        return;
      }
      state.textContent = `Cannot connect (${error.message}); retrying…`;
      retryTimer = setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10_000);
    }
  };

  terminal.onData((data) => send({ type: 'input', data }));
  terminal.onResize(({ cols, rows }) => send({ type: 'resize', cols, rows }));
  const resize = () => fit.fit();
  window.addEventListener('resize', resize);
  // Commands sent before, newest last, per server and kept across visits; ↑ and ↓ walk them.
  const historyKey = `zlh.console-history.${id}`;
  const history = JSON.parse(localStorage.getItem(historyKey) ?? '[]');
  let at = history.length;
  command.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
    event.preventDefault();
    at = Math.max(0, Math.min(history.length, at + (event.key === 'ArrowUp' ? -1 : 1)));
    command.value = history[at] ?? '';
  });
  line.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = command.value.trim();
    if (!text) return;
    try {
      await api('POST', `/api/servers/${id}/console/command`, { command: text });
      command.value = '';
      if (history.at(-1) !== text) history.push(text);
      history.splice(0, history.length - 100);
      localStorage.setItem(historyKey, JSON.stringify(history));
      at = history.length;
    } catch (error) {
      state.replaceChildren(app.problem(error));
    }
  });
  app.onLeave(() => {
    closed = true;
    clearTimeout(retryTimer);
    window.removeEventListener('resize', resize);
    socket?.close();
    terminal.dispose();
  });
  // The terminal needs to be in the document to measure itself.
  requestAnimationFrame(() => {
    terminal.open(element);
    fit.fit();
    connect();
  });
  // Until the server is installed, what its install step prints is what there is to see.
  return [server.install ? installCard(id, app, state, true) : null, element, line, state];
}

/** Files: browse, edit text (CodeMirror), upload with progress, download, rename, delete, extract. */
function filesTab(id, _server, app) {
  const area = h('div');
  // An upload under way: leaving the page would lose it, so the browser asks first.
  let uploading = null;
  const warn = (event) => {
    if (!uploading) return;
    event.preventDefault();
    event.returnValue = '';
  };
  window.addEventListener('beforeunload', warn);
  app.onLeave(() => {
    window.removeEventListener('beforeunload', warn);
    uploading?.abort();
  });
  const status = h('div', { 'aria-live': 'polite' });
  const base = `/api/servers/${id}/files`;
  const join = (dir, name) => (dir ? `${dir}/${name}` : name);
  const q = encodeURIComponent;

  const act = async (work, done) => {
    mount(status);
    try {
      await work();
      if (done) mount(status, notice('ok', done));
    } catch (error) {
      mount(status, app.problem(error));
    }
  };

  const show = async (dir) => {
    // The folder is in the address, so a reload or a shared link opens it again.
    if (location.hash.startsWith(`#/servers/${id}/files`)) {
      history.replaceState(null, '', `#/servers/${id}/files${dir ? `?path=${q(dir)}` : ''}`);
    }
    let entries;
    try {
      entries = await api('GET', `${base}?path=${q(dir)}`);
    } catch (error) {
      mount(area, app.problem(error));
      return;
    }
    const crumbs = [h('button', { type: 'button', class: 'link', onclick: () => show('') }, 'server')];
    let walked = '';
    for (const part of dir.split('/').filter(Boolean)) {
      walked = join(walked, part);
      const target = walked;
      crumbs.push(' / ', h('button', { type: 'button', class: 'link', onclick: () => show(target) }, part));
    }
    const picker = h('input', { type: 'file', id: 'upload-file', multiple: true });
    const folderPicker = h('input', { type: 'file', id: 'upload-folder', webkitdirectory: true });
    const bar = progressBar('Upload progress');
    bar.element.hidden = true;
    const cancel = h('button', { type: 'button', hidden: true, onclick: () => uploading?.abort() }, 'Cancel upload');
    // Uploads `files` ({path relative to this folder, file}), making their folders first.
    const uploadAll = (files) => act(async () => {
      if (!files.length) return;
      bar.element.hidden = false;
      cancel.hidden = false;
      uploading = new AbortController();
      try {
        const folders = [...new Set(files.map(({ path }) => path.split('/').slice(0, -1).join('/')).filter(Boolean))];
        for (const folder of folders) await api('POST', `${base}/mkdir`, { path: join(dir, folder) });
        for (const { path, file } of files) {
          await upload(`${base}/content?path=${q(join(dir, path))}`, file,
            (sent, total) => bar.set(sent, total, `${path}: ${size(sent)} of ${size(total)}`), uploading.signal);
        }
      } finally {
        uploading = null;
        picker.value = '';
        folderPicker.value = '';
        cancel.hidden = true;
      }
      await show(dir);
    }, files.length === 1 ? `Uploaded ${files[0].path}.` : `Uploaded ${files.length} files.`);
    picker.addEventListener('change', () => uploadAll([...picker.files].map((file) => ({ path: file.name, file }))));
    folderPicker.addEventListener('change', () => uploadAll([...folderPicker.files].map((file) => ({ path: file.webkitRelativePath || file.name, file }))));
    // Files and folders dropped anywhere on the list.
    const dropped = async (event) => {
      event.preventDefault();
      area.classList.remove('dropping');
      const files = [];
      const walk = async (entry, prefix) => {
        if (entry.isFile) {
          files.push({ path: prefix + entry.name, file: await new Promise((resolve, reject) => entry.file(resolve, reject)) });
          return;
        }
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
        }
      };
      const items = [...(event.dataTransfer?.items ?? [])].filter((item) => item.kind === 'file');
      const entries = items.map((item) => [item.webkitGetAsEntry?.(), item.getAsFile()]);
      for (const [entry, file] of entries) {
        if (entry) await walk(entry, '');
        else if (file) files.push({ path: file.name, file });
      }
      await uploadAll(files);
    };
    area.ondragover = (event) => {
      event.preventDefault();
      area.classList.add('dropping');
    };
    area.ondragleave = () => area.classList.remove('dropping');
    area.ondrop = dropped;

    // Several entries at once: moved, copied, packed or deleted together.
    const selected = new Set();
    const selection = h('div', { class: 'actions selection', hidden: true, role: 'group', 'aria-label': 'Selected files' });
    const named = () => `${selected.size} item${selected.size === 1 ? '' : 's'}`;
    const each = async (work) => {
      for (const path of selected) await work(path, path.split('/').pop());
      selected.clear();
      await show(dir);
    };
    const toFolder = async (title, action) => {
      const target = await promptDialog(title, 'To the folder (a path from the server folder; it is made if missing)', dir || '.', action);
      if (target === null) return null;
      const folder = target === '.' ? '' : target.replace(/^\/+|\/+$/g, '');
      if (folder) await api('POST', `${base}/mkdir`, { path: folder });
      return folder;
    };
    const selectionActions = [
      h('span', { class: 'muted selected-count' }),
      h('button', { type: 'button', onclick: () => act(async () => {
        const folder = await toFolder(`Move ${named()}`, 'Move');
        if (folder === null) return;
        await each((path, name) => api('POST', `${base}/rename`, { from: path, to: join(folder, name) }));
      }) }, 'Move…'),
      h('button', { type: 'button', onclick: () => act(async () => {
        const folder = await toFolder(`Copy ${named()}`, 'Copy');
        if (folder === null) return;
        // A copy beside its original gets " copy" in its name.
        await each((path, name) => api('POST', `${base}/copy`, {
          from: path,
          to: join(folder, folder === dir ? name.replace(/(\.[^.]*)?$/, ' copy$1') : name),
        }));
      }) }, 'Copy…'),
      h('button', { type: 'button', onclick: () => act(async () => {
        const name = await promptDialog(`Compress ${named()}`, 'Name of the archive', `archive-${new Date().toISOString().slice(0, 10)}.tar.gz`, 'Compress');
        if (!name) return;
        const packing = progressBar(`Compressing into ${name}`);
        mount(status, packing.element);
        const job = await api('POST', `${base}/compress`, { paths: [...selected], to: join(dir, name.endsWith('.tar.gz') ? name : `${name}.tar.gz`) });
        await followJob(id, job, (j) => packing.set(j.done, j.total, j.message));
        selected.clear();
        await show(dir);
      }, 'Compressed.') }, 'Compress…'),
      h('button', { type: 'button', class: 'danger', onclick: () => act(async () => {
        if (!(await confirmDialog('Delete', `Delete ${named()} (folders with everything in them)?`, 'Delete'))) return;
        const kinds = new Map(entries.map((e) => [join(dir, e.name), e.kind]));
        await each((path) => api('DELETE', `${base}?path=${q(path)}&recursive=${kinds.get(path) === 'dir'}`));
      }) }, 'Delete selected'),
    ];
    mount(selection, selectionActions);
    const selectionChanged = () => {
      selection.hidden = selected.size === 0;
      selectionActions[0].textContent = `${named()} selected`;
      all.checked = selected.size > 0 && selected.size === entries.length;
      all.indeterminate = selected.size > 0 && selected.size < entries.length;
    };
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select everything in this folder', onchange: () => {
      for (const box of area.querySelectorAll('input[data-select]')) {
        box.checked = all.checked;
        if (all.checked) selected.add(box.dataset.select);
        else selected.delete(box.dataset.select);
      }
      selectionChanged();
    } });
    const newFolder = () => act(async () => {
      const name = await promptDialog('New folder', 'Name of the new folder', '', 'Create folder');
      if (!name) return;
      await api('POST', `${base}/mkdir`, { path: join(dir, name) });
      await show(dir);
    });
    const newFile = () => act(async () => {
      const name = await promptDialog('New file', 'Name of the new file', '', 'Create file');
      if (!name) return;
      const path = join(dir, name);
      if (entries.some((e) => e.name === name)) throw new Error(`${name} is there already.`);
      await api('PUT', `${base}/content?path=${q(path)}`, new Blob(['']));
      await edit(path, { name, size: 0 });
    });
    const rows = entries.map((entry) => {
      const path = join(dir, entry.name);
      const isArchive = /\.(zip|tar\.gz|tgz|tar\.zst)$/i.test(entry.name);
      return h('tr', { 'data-file': entry.name },
        h('td', { class: 'pick' }, h('input', { type: 'checkbox', 'data-select': path, 'aria-label': `Select ${entry.name}`, onchange: (event) => {
          if (event.target.checked) selected.add(path);
          else selected.delete(path);
          selectionChanged();
        } })),
        h('td', {}, entry.kind === 'dir'
          ? h('button', { type: 'button', class: 'link', onclick: () => show(path) }, `${entry.name}/`)
          : h('button', { type: 'button', class: 'link', onclick: () => edit(path, entry) }, entry.name)),
        h('td', { class: 'optional' }, entry.kind === 'dir' ? '' : size(entry.size)),
        h('td', { class: 'optional' }, when(entry.modifiedMs)),
        h('td', { class: 'actions-cell' },
          entry.kind === 'file' ? h('button', { type: 'button', 'aria-label': `Download ${entry.name}`, onclick: () => act(() => download(`${base}/content?path=${q(path)}`, entry.name)) }, 'Download') : null,
          isArchive ? h('button', { type: 'button', 'aria-label': `Extract ${entry.name}`, onclick: () => act(async () => {
            const bar2 = progressBar(`Extracting ${entry.name}`);
            mount(status, bar2.element);
            const job = await api('POST', `${base}/extract`, { path, to: dir });
            await followJob(id, job, (j) => bar2.set(j.done, j.total, j.message));
            await show(dir);
          }, `Extracted ${entry.name}.`) }, 'Extract') : null,
          h('button', { type: 'button', 'aria-label': `Rename ${entry.name}`, onclick: () => act(async () => {
            const name = await promptDialog(`Rename ${entry.name}`, 'New name', entry.name, 'Rename');
            if (!name || name === entry.name) return;
            await api('POST', `${base}/rename`, { from: path, to: join(dir, name) });
            await show(dir);
          }) }, 'Rename'),
          h('button', { type: 'button', 'aria-label': `Permissions of ${entry.name}`, onclick: () => act(async () => {
            const mode = await promptDialog(`Permissions of ${entry.name}`, 'Mode (octal, such as 644 or 755)', (entry.mode ?? 0o644).toString(8), 'Set');
            if (!mode) return;
            if (!/^[0-7]{3}$/.test(mode)) throw new Error('A mode is three octal digits, such as 644.');
            await api('POST', `${base}/chmod`, { path, mode: parseInt(mode, 8) });
            await show(dir);
            mount(status, notice('ok', `Permissions of ${entry.name} set to ${mode}.`));
          }) }, 'Permissions'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${entry.name}`, onclick: () => act(async () => {
            if (!(await confirmDialog('Delete', `Delete ${path}${entry.kind === 'dir' ? ' and everything in it' : ''}?`, 'Delete'))) return;
            await api('DELETE', `${base}?path=${q(path)}&recursive=${entry.kind === 'dir'}`);
            await show(dir);
          }) }, 'Delete')));
    });
    mount(area,
      h('nav', { class: 'crumbs', 'aria-label': 'Folder' }, crumbs),
      h('div', { class: 'actions' },
        h('label', { for: 'upload-file', class: 'button' }, 'Upload files'), picker,
        h('label', { for: 'upload-folder', class: 'button' }, 'Upload a folder'), folderPicker,
        h('button', { type: 'button', onclick: newFolder }, 'New folder'),
        h('button', { type: 'button', onclick: newFile }, 'New file')),
      h('p', { class: 'muted drop-hint' }, 'Or drop files and folders here.'),
      bar.element,
      cancel,
      selection,
      entries.length
        ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { class: 'pick' }, all), h('th', {}, 'Name'), h('th', { class: 'optional' }, 'Size'), h('th', { class: 'optional' }, 'Modified'), h('th', {}, ''))), h('tbody', {}, rows)))
        : h('p', { class: 'muted' }, 'This folder is empty.'));
    picker.classList.add('visually-hidden');
    folderPicker.classList.add('visually-hidden');
  };

  const edit = async (path, entry) => {
    const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    if (entry.size > TEXT_LIMIT) {
      mount(status, notice('info', `${entry.name} is too large to edit here.`, 'Download it instead.'));
      return;
    }
    await act(async () => {
      const response = await api('GET', `${base}/content?path=${q(path)}`, undefined, { raw: true });
      let text;
      try {
        // Only UTF-8 text is edited here: anything else would be changed by saving it.
        text = new TextDecoder('utf-8', { fatal: true }).decode(await response.arrayBuffer());
      } catch {
        mount(status, notice('info', `${entry.name} is not text this editor can keep as it is.`, 'Download it instead.'));
        return;
      }
      // The editor has \n line ends; a file that had \r\n gets them back when saved.
      const crlf = text.includes('\r\n');
      const original = crlf ? text.replaceAll('\r\n', '\n') : text;
      const { codeEditor } = await import('./editor.js');
      const host = h('div', { class: 'code-editor' });
      const editor = codeEditor(host, original, path, path);
      const saved = h('div', { 'aria-live': 'polite' });
      let kept = original;
      const back = async () => {
        if (editor.value() !== kept && !(await confirmDialog('Unsaved changes', `Your changes to ${path} are not saved. Leave them?`, 'Discard changes'))) return;
        show(dir);
      };
      mount(area,
        h('h2', {}, `Editing ${path}`),
        host,
        saved,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', onclick: async () => {
            const value = editor.value();
            if (value === kept) {
              mount(saved, notice('info', 'Nothing changed, so nothing was written.'));
              return;
            }
            try {
              await api('PUT', `${base}/content?path=${q(path)}`, new Blob([crlf ? value.replaceAll('\n', '\r\n') : value]));
              kept = value;
              mount(saved, notice('ok', `Saved ${path}.`));
            } catch (error) {
              mount(saved, app.problem(error));
            }
          } }, 'Save'),
          h('button', { type: 'button', onclick: back }, 'Back to the folder')));
    });
  };

  show(app.query?.get('path') ?? '');
  return [status, area];
}

/** Backups: create with progress, list, restore (after asking), delete. */
function backupsTab(id, _server, app) {
  const base = `/api/game/servers/${id}/backups`;
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const bar = progressBar('Backup progress');
  bar.element.hidden = true;

  const name = h('input', { id: 'backup-name', maxlength: '64', autocomplete: 'off', placeholder: 'Before the update' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create backup');
  const run = async (path, label, done, body) => {
    mount(status);
    // One at a time: a second click would only be refused.
    create.disabled = true;
    bar.element.hidden = false;
    bar.set(0, 0, `${label}…`);
    try {
      const job = await api('POST', path, body);
      await followJob(id, job, (j) => bar.set(j.done, j.total, `${label}: ${j.message ?? ''}`));
      bar.element.hidden = true;
      mount(status, notice('ok', done));
    } catch (error) {
      bar.element.hidden = true;
      mount(status, app.problem(error));
    } finally {
      create.disabled = false;
    }
    await show();
  };
  const createForm = h('form', { class: 'actions backup-create', onsubmit: async (event) => {
    event.preventDefault();
    const given = name.value.trim();
    await run(base, 'Backing up', given ? `The backup "${given}" was taken.` : 'The backup was taken.', given ? { name: given } : undefined);
    name.value = '';
  } }, field('Name (optional)', name), create);

  const act = async (work) => {
    try {
      await work();
      await show();
    } catch (error) {
      mount(status, app.problem(error));
    }
  };
  const show = () => showList(app, list, base, 'No backups yet.', (backups) => h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Backup'), h('th', { class: 'optional' }, 'Files'), h('th', {}, 'Size'), h('th', { class: 'optional' }, 'Consistent'), h('th', {}, ''))),
      h('tbody', {}, backups.slice().reverse().map((backup) => {
        const title = backup.name ?? when(backup.createdAt);
        const one = `${base}/${encodeURIComponent(backup.id)}`;
        return h('tr', { 'data-backup': backup.id },
          h('td', {}, backup.name ? [h('strong', {}, backup.name), h('br'), h('span', { class: 'muted' }, when(backup.createdAt))] : when(backup.createdAt),
            backup.locked ? h('span', { class: 'badge locked', title: 'Kept by retention and safe from deletion until unlocked' }, 'locked') : null),
          h('td', { class: 'optional' }, backup.files),
          h('td', {}, size(backup.sizeBytes)),
          h('td', { class: 'optional' }, backup.quiesced ? 'saved while paused' : 'server was stopped'),
          h('td', { class: 'actions-cell' },
            h('button', { type: 'button', 'aria-label': `Download backup ${title}`, onclick: () => act(async () => {
              // A single-use link: the browser saves the archive as it arrives, whatever its size.
              const link = await api('POST', `${one}/download`);
              const anchor = h('a', { href: link.url, download: `backup-${backup.id}.tar.zst` });
              document.body.append(anchor);
              anchor.click();
              anchor.remove();
            }) }, 'Download'),
            h('button', { type: 'button', 'aria-label': `Rename backup ${title}`, onclick: async () => {
              const given = await promptDialog('Rename backup', 'Name of the backup', backup.name ?? '', 'Rename');
              if (given === null) return;
              await act(() => api('PATCH', one, { name: given }));
            } }, 'Rename'),
            h('button', { type: 'button', 'aria-label': `${backup.locked ? 'Unlock' : 'Lock'} backup ${title}`, onclick: () => act(() => api('PATCH', one, { locked: !backup.locked })) },
              backup.locked ? 'Unlock' : 'Lock'),
            h('button', { type: 'button', 'aria-label': `Restore backup ${title}`, onclick: async () => {
              if (!(await confirmDialog('Restore backup', `The server's files are replaced by the backup ${title}. The server restarts if it runs. Files changed since are lost.`, 'Restore'))) return;
              await run(`${base}/restore?id=${encodeURIComponent(backup.id)}`, 'Restoring', 'The backup was restored.');
            } }, 'Restore'),
            h('button', { type: 'button', class: 'danger', disabled: backup.locked, title: backup.locked ? 'Unlock it first' : null, 'aria-label': `Delete backup ${title}`, onclick: async () => {
              if (!(await confirmDialog('Delete backup', `Delete the backup ${title} for good?`, 'Delete'))) return;
              await act(() => api('DELETE', one));
            } }, 'Delete')));
      })))));

  show();
  return [
    createForm,
    bar.element,
    status,
    list,
  ];
}

/** Setup: the template's variables (applied at the next start) and its install step. */
function setupTab(id, server, app) {
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card' });

  const showVariables = async () => {
    let variables;
    try {
      variables = await api('GET', `/api/servers/${id}/variables`);
    } catch (error) {
      mount(form, app.problem(error));
      return;
    }
    if (!variables.length) {
      mount(form, h('p', { class: 'muted' }, 'This template has no settings to change.'));
      return;
    }
    const inputs = variables.map((v) => h('input', {
      value: v.value, 'data-env': v.env, autocomplete: 'off', disabled: !v.editable,
      'data-original': v.value,
    }));
    mount(form,
      h('h2', {}, 'Settings'),
      h('p', { class: 'muted' }, 'Saved settings apply the next time the server starts.'),
      variables.map((v, at) => field(v.name, inputs[at], [v.description, v.rules.length ? ` (${v.rules.join(', ')})` : ''].join(''))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save settings')));
    form.onsubmit = async (event) => {
      event.preventDefault();
      mount(status);
      // Only what changed is sent: a setting the owner did not touch keeps its value.
      const values = Object.fromEntries(inputs.filter((i) => !i.disabled && i.value !== i.dataset.original)
        .map((i) => [i.dataset.env, i.value]));
      try {
        await api('PUT', `/api/servers/${id}/variables`, { values });
        mount(status, notice('ok', 'Settings saved.', 'They apply at the next start.'));
        await showVariables();
      } catch (error) {
        mount(status, app.problem(error));
      }
    };
  };

  showVariables();
  return [status, installCard(id, app, status, false), form];
}

/**
 * The install step's state and output, followed while it runs; with `onlyPending`, shown only
 * while it runs or after it failed (the console's view).
 */
function installCard(id, app, status, onlyPending) {
  const install = h('div');
  const showInstall = async () => {
    let view;
    try {
      view = await api('GET', `/api/servers/${id}/install`);
    } catch (error) {
      mount(install, app.problem(error));
      return;
    }
    if ((!view.state && !view.log) || (onlyPending && !view.state)) {
      mount(install);
      return;
    }
    const said = { installing: notice('info', 'Installing…', 'The server can start when this is done.'),
      failed: notice('error', 'The install step failed.', view.message ?? '') }[view.state];
    mount(install, h('div', { class: 'card' },
      h('h2', {}, 'Install'),
      said ?? notice('ok', 'Installed.'),
      view.log ? h('pre', { class: 'tail', tabindex: '0', 'aria-label': 'Install output' }, view.log) : null,
      view.state === 'installing' ? null : h('div', { class: 'actions' }, h('button', { type: 'button', onclick: async () => {
        if (!(await confirmDialog('Install again', 'The template\'s install script runs again on the server\'s files. The server must be stopped.', 'Install'))) return;
        try {
          await api('POST', `/api/servers/${id}/install`);
          await showInstall();
        } catch (error) {
          mount(status, app.problem(error));
        }
      } }, view.state === 'failed' ? 'Retry install' : 'Install again'))));
    if (view.state === 'installing' && !left) setTimeout(showInstall, 1000);
  };
  let left = false;
  app.onLeave(() => { left = true; });

  showInstall();
  return install;
}

/** Mods: list with what their jars say, enable/disable, upload, remove. */
function modsTab(id, _server, app) {
  const base = `/api/servers/${id}/mods`;
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const picker = h('input', { type: 'file', id: 'mod-file', accept: '.jar', multiple: true, class: 'visually-hidden' });
  const bar = progressBar('Mod upload progress');
  bar.element.hidden = true;

  const act = async (work) => {
    mount(status);
    try {
      await work();
    } catch (error) {
      mount(status, app.problem(error));
    }
    await show();
  };
  picker.addEventListener('change', () => act(async () => {
    bar.element.hidden = false;
    for (const file of picker.files) {
      await upload(`${base}/upload?name=${encodeURIComponent(file.name)}`, file, (sent, total) => bar.set(sent, total, file.name));
    }
    picker.value = '';
    bar.element.hidden = true;
  }));

  const show = () => showList(app, list, base, 'No mods or plugins.', (mods) => h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Mod'), h('th', {}, 'Version'), h('th', { class: 'optional' }, 'Loader'), h('th', {}, 'Enabled'), h('th', {}, ''))),
      h('tbody', {}, mods.map((mod) => {
        const toggle = h('input', { type: 'checkbox', checked: mod.enabled, 'aria-label': `Enable ${mod.name ?? mod.file}` });
        toggle.addEventListener('change', () => act(() => api('POST', `${base}/${encodeURIComponent(mod.file)}/${toggle.checked ? 'enable' : 'disable'}`)));
        return h('tr', { 'data-mod': mod.file },
          h('td', {}, mod.name ?? mod.file, h('br'), h('small', { class: 'muted' }, mod.file)),
          h('td', {}, mod.version ?? ''),
          h('td', { class: 'optional' }, mod.loader ?? ''),
          h('td', {}, toggle),
          h('td', { class: 'actions-cell' }, h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${mod.file}`, onclick: async () => {
            if (!(await confirmDialog('Remove mod', `Remove ${mod.file}?`, 'Remove'))) return;
            await act(() => api('DELETE', `${base}/${encodeURIComponent(mod.file)}`));
          } }, 'Remove')));
      })))));

  show();
  return [
    h('div', { class: 'actions' }, h('label', { for: 'mod-file', class: 'button' }, 'Upload a mod (.jar)'), picker),
    bar.element,
    status,
    list,
  ];
}

/** Crash history with classifications and log tails. */
async function crashesTab(id, _server, app) {
  let history;
  try {
    history = await api('GET', `/api/servers/${id}/crashes`);
  } catch (error) {
    return app.problem(error);
  }
  const crashes = (history?.crashes ?? []).slice().reverse();
  if (!crashes.length) return h('p', { class: 'muted' }, 'No crashes recorded.');
  return crashes.map((crash) => h('article', { class: 'card crash' },
    h('h2', {}, `${when(crash.at)} · `, h('span', { class: 'badge crashed' }, crash.classification)),
    h('p', {}, crash.reason),
    h('p', { class: 'muted' }, `Exit code ${crash.exitCode ?? '—'}, signal ${crash.signal ?? '—'}, up ${Math.round(crash.uptimeMs / 1000)} s.`),
    h('details', {}, h('summary', {}, 'Last console lines'), h('pre', { class: 'tail' }, (crash.logTail ?? []).join('\n')))));
}

/** A dev server: its runtime, code-server, and the IDE. */
function ideTab(id, server, app) {
  const detail = server.status?.detail ?? {};
  const status = h('div', { 'aria-live': 'polite' });
  const running = h('span', {}, detail.codeServerRunning ? 'running' : 'stopped');
  const control = (action) => async () => {
    mount(status);
    try {
      const answer = await api('POST', `/api/dev/${id}/codeserver/${action}`);
      running.textContent = answer?.codeServerRunning ? 'running' : 'stopped';
    } catch (error) {
      mount(status, app.problem(error));
    }
  };
  const openIde = async () => {
    mount(status);
    try {
      // The link is single-use and short-lived: fetched on the click, opened at once (still
      // within the click's user activation, so popup blockers let it through).
      const link = await api('POST', `/api/dev/${id}/ide-token`);
      window.open(link.url, '_blank', 'noopener');
      mount(status, notice('ok', 'The IDE opens in a new tab.', 'If nothing opened, allow pop-ups for this site and try again.'));
    } catch (error) {
      mount(status, app.problem(error));
    }
  };
  return [
    h('dl', { class: 'card' },
      h('dt', {}, 'Runtime'), h('dd', {}, `${server.runtime ?? ''} ${server.version ?? ''}${detail.runtimeInstalled === false ? ' (installing…)' : ''}`),
      h('dt', {}, 'Workspace'), h('dd', {}, detail.workspaceRoot ?? '/home/dev/workspace'),
      h('dt', {}, 'code-server'), h('dd', {}, server.enableCodeServer ? running : 'not enabled for this server')),
    status,
    server.enableCodeServer
      ? h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: openIde }, 'Open IDE'),
        h('button', { type: 'button', onclick: control('start') }, 'Start code-server'),
        h('button', { type: 'button', onclick: control('stop') }, 'Stop code-server'))
      : null,
  ];
}

/** What an owner may grant, as the Users tab names it. */
const GRANTS = [
  ['console', 'Console'],
  ['power', 'Power'],
  ['files', 'Files'],
  ['backups', 'Backups'],
  ['ide', 'IDE'],
  ['schedules', 'Schedules'],
];

/** Checkboxes of the grantable permissions, `chosen` ticked; `picked()` reads them back. */
function grantBoxes(chosen, label) {
  const boxes = GRANTS.map(([name, text]) => {
    const box = h('input', { type: 'checkbox', value: name, checked: chosen.includes(name) });
    return [box, h('label', { class: 'check' }, box, ` ${text}`)];
  });
  const element = h('fieldset', { class: 'grants' }, h('legend', {}, label), boxes.map(([, l]) => l));
  return { element, picked: () => boxes.filter(([box]) => box.checked).map(([box]) => box.value) };
}

/** Users: accounts the owner invited, and what each may do (taking effect at once). */
function usersTab(id, _server, app) {
  const base = `/api/servers/${id}/members`;
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const email = h('input', { type: 'email', id: 'invite-email', autocomplete: 'off', required: true });
  const grants = grantBoxes(['console'], 'They may use');
  const invite = async (event) => {
    event.preventDefault();
    mount(status);
    try {
      const member = await api('POST', base, { email: email.value, permissions: grants.picked() });
      email.value = '';
      mount(status, notice('ok', `Invited ${member.email}: whoever signs in with that address sees this server.`));
      await show();
    } catch (error) {
      mount(status, app.problem(error));
    }
  };
  const show = () => showList(app, list, base, 'Nobody else has access to this server.', (members) => members.map((member) => {
      const boxes = grantBoxes(member.permissions, member.email);
      const save = async () => {
        try {
          await api('PUT', `${base}/${member.id}`, { permissions: boxes.picked() });
          mount(status, notice('ok', `Saved what ${member.email} may do; it holds from now on.`));
        } catch (error) {
          mount(status, app.problem(error));
        }
      };
      const revoke = async () => {
        if (!(await confirmDialog('Remove access', `${member.email} loses access to this server now, open consoles included.`, 'Remove access'))) return;
        try {
          await api('DELETE', `${base}/${member.id}`);
          mount(status, notice('ok', `${member.email} no longer has access.`));
          await show();
        } catch (error) {
          mount(status, app.problem(error));
        }
      };
      return h('div', { class: 'card member', 'data-member': member.email },
        boxes.element,
        h('p', { class: 'muted' }, `Invited ${when(member.addedAt)}`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: save, 'aria-label': `Save what ${member.email} may do` }, 'Save'),
          h('button', { type: 'button', class: 'danger', onclick: revoke, 'aria-label': `Remove ${member.email}` }, 'Remove')));
    }));
  show();
  return [
    h('form', { class: 'card', onsubmit: invite },
      h('h2', {}, 'Invite someone'),
      field('Their email address', email, 'They see this server once they sign in with it (and create an account with it, if they have none).'),
      grants.element,
      h('button', { type: 'submit', class: 'primary' }, 'Invite')),
    status,
    list,
  ];
}

/** What a schedule's step can do, as the Schedules tab names it. */
const STEP_ACTIONS = [
  ['command', 'Send a console command'],
  ['restart', 'Restart'],
  ['stop', 'Stop'],
  ['start', 'Start'],
  ['backup', 'Back up'],
];

/** Schedules: cron-like tasks the control plane runs, with their latest runs. */
function schedulesTab(id, _server, app) {
  const base = `/api/servers/${id}/schedules`;
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  let editing = null;

  const name = h('input', { id: 'schedule-name', maxlength: '64', autocomplete: 'off', required: true });
  const cron = h('input', { id: 'schedule-cron', autocomplete: 'off', required: true, value: '0 4 * * *', spellcheck: 'false' });
  const enabled = h('input', { type: 'checkbox', id: 'schedule-enabled', checked: true });
  const onlyRunning = h('input', { type: 'checkbox', id: 'schedule-only-running' });
  const steps = h('ol', { class: 'steps' });
  const stepRow = (step = { action: 'command', payload: '', delaySecs: 0 }) => {
    const n = steps.children.length + 1;
    const action = h('select', { 'aria-label': `Step ${n}: action` },
      STEP_ACTIONS.map(([value, text]) => h('option', { value, selected: value === step.action }, text)));
    const payload = h('input', { 'aria-label': `Step ${n}: command or backup name`, value: step.payload ?? '', autocomplete: 'off', placeholder: 'say Restarting in 5 minutes' });
    const delay = h('input', { type: 'number', min: '0', max: '900', value: String(step.delaySecs ?? 0), 'aria-label': `Step ${n}: seconds to wait first` });
    const row = h('li', { class: 'step' }, action, payload, h('label', { class: 'delay' }, 'wait ', delay, ' s first'),
      h('button', { type: 'button', 'aria-label': `Remove step ${n}`, onclick: () => row.remove() }, 'Remove'));
    row.read = () => ({ action: action.value, payload: payload.value, delaySecs: Number(delay.value) || 0 });
    steps.append(row);
  };
  const heading = h('h2', {}, 'New schedule');
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save schedule');
  const reset = () => {
    editing = null;
    heading.textContent = 'New schedule';
    name.value = '';
    cron.value = '0 4 * * *';
    enabled.checked = true;
    onlyRunning.checked = false;
    mount(steps);
    stepRow();
  };
  const edit = (schedule) => {
    editing = schedule.id;
    heading.textContent = `Change ${schedule.name}`;
    name.value = schedule.name;
    cron.value = schedule.cron;
    enabled.checked = schedule.enabled;
    onlyRunning.checked = schedule.onlyWhenRunning;
    mount(steps);
    schedule.steps.forEach(stepRow);
    name.focus();
  };
  const submit = async (event) => {
    event.preventDefault();
    mount(status);
    const body = { name: name.value, cron: cron.value, enabled: enabled.checked, onlyWhenRunning: onlyRunning.checked, steps: [...steps.children].map((row) => row.read()) };
    try {
      const saved = await api(editing ? 'PUT' : 'POST', editing ? `${base}/${editing}` : base, body);
      mount(status, notice('ok', `Saved ${saved.name}: ${saved.description}${saved.nextRunAt ? `, next at ${when(saved.nextRunAt)}` : ''}.`));
      reset();
      await show();
    } catch (error) {
      mount(status, app.problem(error));
    }
  };
  const form = h('form', { class: 'card', onsubmit: submit },
    heading,
    field('Name', name),
    field('When (cron, UTC)', cron, 'minute hour day-of-month month day-of-week, e.g. 0 4 * * * is every day at 04:00 UTC; */15 * * * * every quarter hour'),
    h('label', { class: 'check' }, enabled, ' Run at these times'),
    h('label', { class: 'check' }, onlyRunning, ' Only while the server is running'),
    h('p', { class: 'label' }, 'Steps, in order'),
    steps,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => stepRow() }, 'Add step'),
      save,
      h('button', { type: 'button', onclick: reset }, 'Clear')));

  const act = async (work) => {
    mount(status);
    try {
      await work();
    } catch (error) {
      mount(status, app.problem(error));
    }
    await show();
  };
  const show = async () => {
    const schedules = await showList(app, list, base, 'No schedules yet.', (schedules) => schedules.map((schedule) => h('div', { class: 'card schedule', 'data-schedule': schedule.name },
      h('div', { class: 'row' },
        h('h3', {}, schedule.name, ' ', h('span', { class: `badge ${schedule.enabled ? 'running' : 'stopped'}` }, schedule.enabled ? 'on' : 'off')),
        h('div', { class: 'actions' },
          h('button', { type: 'button', 'aria-label': `Run now: ${schedule.name}`, onclick: () => act(async () => {
            await api('POST', `${base}/${schedule.id}/run`);
            mount(status, notice('ok', `${schedule.name} is running; its outcome shows below.`));
          }) }, 'Run now'),
          h('button', { type: 'button', 'aria-label': `Change ${schedule.name}`, onclick: () => edit(schedule) }, 'Change'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${schedule.name}`, onclick: async () => {
            if (!(await confirmDialog('Delete schedule', `Delete ${schedule.name} and its history?`, 'Delete'))) return;
            await act(() => api('DELETE', `${base}/${schedule.id}`));
          } }, 'Delete'))),
      h('p', { class: 'muted' }, h('code', {}, schedule.cron), ` · ${schedule.description} (UTC)`,
        schedule.nextRunAt ? ` · next ${when(schedule.nextRunAt)}` : ''),
      h('ol', { class: 'muted' }, schedule.steps.map((step) => h('li', {},
        (step.delaySecs ? `after ${step.delaySecs} s, ` : '') + STEP_ACTIONS.find(([a]) => a === step.action)[1].toLowerCase() + (step.payload ? `: ${step.payload}` : '')))),
      schedule.runs.length
        ? h('div', { class: 'table-wrap' }, h('table', { 'aria-label': `Latest runs of ${schedule.name}` },
          h('thead', {}, h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Outcome'), h('th', { class: 'optional' }, 'Detail'))),
          h('tbody', {}, schedule.runs.slice(0, 5).map((run) => h('tr', {},
            h('td', {}, when(run.startedAt)),
            h('td', {}, h('span', { class: `badge ${run.outcome}` }, run.outcome)),
            h('td', { class: 'optional' }, run.detail))))))
        : h('p', { class: 'muted' }, 'It has not run yet.'))));
    if (schedules) follow(schedules);
  };
  // Runs end on their own: while one goes on, the list follows it.
  let following = null;
  const follow = (schedules) => {
    clearTimeout(following);
    if (schedules.some((s) => s.runs.some((run) => run.outcome === 'running'))) following = setTimeout(show, 1500);
  };
  app.onLeave(() => clearTimeout(following));
  reset();
  show();
  return [form, status, list];
}
