// The admin's templates: every template with where it comes from, importing eggs (pasted or
// from a URL), editing a template's file, removing one and restoring a built-in one. Changes
// are offered to customers at once.

import { api } from './api.js';
import { confirmDialog, field, h, mount, notice } from './dom.js';

const ORIGINS = { built_in: 'built in', directory: 'templates directory', stored: 'imported or changed here' };

/** The templates card of the admin page; `problem` renders an API error. */
export async function templatesCard(problem) {
  const status = h('div', { 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap' });
  const editor = h('div');

  const act = async (work) => {
    mount(status);
    try {
      await work();
      await refresh();
    } catch (error) {
      mount(status, problem(error));
    }
  };

  const edit = async (name) => {
    const template = await api('GET', `/api/admin/templates/${encodeURIComponent(name)}`);
    const source = h('textarea', { rows: 18, spellcheck: 'false', class: 'code' });
    source.value = template.source;
    const form = h('form', { class: 'card' },
      h('h2', {}, `Template ${name}`),
      field('Template file (TOML)', source, 'Checked before it is kept. New servers use it; existing ones keep their command and follow its settings and install step.'),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Save template'),
        h('button', { type: 'button', onclick: () => mount(editor) }, 'Close')));
    form.onsubmit = (event) => {
      event.preventDefault();
      act(async () => {
        await api('PUT', `/api/admin/templates/${encodeURIComponent(name)}`, { source: source.value });
        mount(status, notice('ok', `Template ${name} saved.`, 'It is offered at once.'));
        mount(editor);
      });
    };
    mount(editor, form);
    source.focus();
  };

  const refresh = async () => {
    const templates = await api('GET', '/api/admin/templates');
    mount(table, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Template'), h('th', { class: 'optional' }, 'Description'), h('th', {}, 'From'), h('th', {}, ''))),
      h('tbody', {}, templates.map((t) => h('tr', { 'data-template': t.name },
        h('td', {}, t.name),
        h('td', { class: 'optional' }, t.removed ? h('span', { class: 'badge stopped' }, 'removed') : t.description),
        h('td', {}, t.removed ? ORIGINS[t.replaces] : ORIGINS[t.origin] + (t.replaces ? ` (over a ${ORIGINS[t.replaces]} one)` : '')),
        h('td', { class: 'actions-cell' },
          t.removed ? null : h('button', { type: 'button', onclick: () => act(() => edit(t.name)) }, `Edit ${t.name}`),
          t.replaces ? h('button', { type: 'button', onclick: () => act(async () => {
            await api('POST', `/api/admin/templates/${encodeURIComponent(t.name)}/restore`);
            mount(status, notice('ok', `The ${ORIGINS[t.replaces]} template ${t.name} is back.`));
          }) }, `Restore ${t.name}`) : null,
          t.removed ? null : h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!(await confirmDialog('Remove template', `${t.name} is no longer offered. Servers made from it keep running.`, 'Remove'))) return;
            act(async () => {
              await api('DELETE', `/api/admin/templates/${encodeURIComponent(t.name)}`);
              mount(status, notice('ok', `Template ${t.name} removed.`));
            });
          } }, `Remove ${t.name}`)))))));
  };

  const egg = h('textarea', { rows: 6, spellcheck: 'false', class: 'code short', placeholder: '{"meta": {"version": "PTDL_v2"}, …}' });
  const url = h('input', { type: 'url', placeholder: 'http://…/egg.json', autocomplete: 'off' });
  const name = h('input', { autocomplete: 'off', pattern: '[a-z0-9-]{1,64}' });
  const importForm = h('form', { class: 'card' },
    h('h2', {}, 'Import an egg'),
    h('p', { class: 'muted' }, 'A Pterodactyl (PTDL_v1, PTDL_v2) or Pelican (JSON, YAML) egg: paste it or give its address.'),
    field('Egg', egg),
    field('Or its URL', url),
    field('Template name', name, 'Optional: made from the egg\'s name.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Import egg')));
  importForm.onsubmit = (event) => {
    event.preventDefault();
    act(async () => {
      const body = url.value.trim() ? { url: url.value.trim() } : { egg: egg.value };
      if (name.value.trim()) body.name = name.value.trim();
      const imported = await api('POST', '/api/admin/templates/import', body);
      mount(status, notice('ok', `Imported as the template ${imported.template.name}.`,
        imported.notes.length ? `Not carried out: ${imported.notes.join('; ')}` : 'Everything in it is carried out.'));
      egg.value = '';
      url.value = '';
      name.value = '';
    });
  };

  await refresh();
  return [h('h1', {}, 'Templates'), status, table, editor, importForm];
}
