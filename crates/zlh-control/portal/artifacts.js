// The admin's artifact store: the runtimes, code-server builds and mods agents install, with
// their sizes and SHA-256s; uploading a new version (with progress) and removing one.

import { api, upload } from './api.js';
import { confirmDialog, field, h, mount, notice, progressBar, size } from './dom.js';

/** The artifacts card of the admin page; `problem` renders an API error. */
export async function artifactsCard(problem) {
  const status = h('div', { 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap' });
  const refresh = async () => {
    const artifacts = await api('GET', '/api/admin/artifacts');
    if (!artifacts.length) {
      mount(table, h('p', { class: 'muted' }, 'The store is empty: dev servers cannot install runtimes yet.'));
      return;
    }
    mount(table, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Kind'), h('th', {}, 'Name'), h('th', {}, 'Version'), h('th', { class: 'optional' }, 'Size'), h('th', { class: 'optional' }, 'SHA-256'), h('th', {}, ''))),
      h('tbody', {}, artifacts.map((artifact) => {
        const what = `${artifact.name} ${artifact.version}`;
        return h('tr', { 'data-artifact': what },
          h('td', {}, artifact.kind),
          h('td', {}, artifact.name),
          h('td', {}, artifact.version),
          h('td', { class: 'optional' }, size(artifact.size)),
          h('td', { class: 'optional' }, h('code', { title: artifact.sha256 }, `${artifact.sha256.slice(0, 12)}…`)),
          h('td', { class: 'actions-cell' }, h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${what}`, onclick: async () => {
            if (!(await confirmDialog('Remove artifact', `Remove ${what} from the store? Servers that installed it keep their copy; new installs cannot use it.`, 'Remove'))) return;
            try {
              await api('DELETE', `/api/admin/artifacts/${artifact.kind}/${encodeURIComponent(artifact.name)}/${encodeURIComponent(artifact.version)}`);
              mount(status, notice('ok', `Removed ${what}.`));
              await refresh();
            } catch (error) {
              mount(status, problem(error));
            }
          } }, 'Remove')));
      }))));
  };

  const kind = h('select', { id: 'artifact-kind' },
    h('option', { value: 'runtime' }, 'Runtime (a .tar.gz dev servers unpack)'),
    h('option', { value: 'addon' }, 'Addon (code-server)'),
    h('option', { value: 'mod' }, 'Mod (a .jar game servers install)'));
  const name = h('input', { id: 'artifact-name', required: true, autocomplete: 'off', placeholder: 'node' });
  const version = h('input', { id: 'artifact-version', required: true, autocomplete: 'off', placeholder: '22.11.0' });
  const file = h('input', { type: 'file', id: 'artifact-file', required: true });
  const bar = progressBar('Artifact upload');
  bar.element.hidden = true;
  const form = h('form', { class: 'card', onsubmit: async (event) => {
    event.preventDefault();
    mount(status);
    const chosen = file.files[0];
    if (!chosen) return;
    bar.element.hidden = false;
    try {
      const path = `/api/admin/artifacts/${kind.value}/${encodeURIComponent(name.value.trim())}/${encodeURIComponent(version.value.trim())}?file=${encodeURIComponent(chosen.name)}`;
      await upload(path, chosen, (sent, total) => bar.set(sent, total, `${chosen.name}: ${size(sent)} of ${size(total)}`));
      mount(status, notice('ok', `Added ${name.value.trim()} ${version.value.trim()}; agents can install it now.`));
      form.reset();
      await refresh();
    } catch (error) {
      mount(status, problem(error));
    } finally {
      bar.element.hidden = true;
    }
  } },
    h('h2', {}, 'Add to the store'),
    field('Artifact kind', kind), field('Artifact name', name), field('Artifact version', version), field('Artifact file', file),
    bar.element,
    h('button', { type: 'submit', class: 'primary' }, 'Upload'));
  await refresh().catch((error) => mount(table, problem(error)));
  return [h('h2', { id: 'artifacts' }, 'Artifacts'), status, table, form];
}
