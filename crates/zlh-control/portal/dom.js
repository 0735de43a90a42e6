// Small DOM helpers: the portal builds its pages with these, no framework.

/** Creates an element: h('button', {class: 'primary', onclick}, 'Save'). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'value') element.value = value;
    else if (name === 'checked') element.checked = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function mount(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A labelled form field; the input gets an id so the label points at it. */
let fieldCount = 0;
export function field(label, input, hint) {
  fieldCount += 1;
  input.id = input.id || `field-${fieldCount}`;
  return h('div', { class: 'field' },
    h('label', { for: input.id }, label),
    input,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A message for the person: role=alert for errors (read out at once), status otherwise. */
export function notice(kind, text, next) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', {}, text),
    next ? h('p', { class: 'next' }, next) : null);
}

/** Bytes as people read them. */
export function size(bytes) {
  if (bytes === null || bytes === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A timestamp (RFC 3339 or ms) in the reader's locale. */
export function when(time) {
  if (!time) return '';
  return new Date(time).toLocaleString();
}

/** A progress bar with an accessible name. */
export function progressBar(label) {
  const bar = h('progress', { max: 100, 'aria-label': label });
  const text = h('span', { class: 'progress-text' });
  const element = h('div', { class: 'progress' }, bar, text);
  return {
    element,
    set(done, total, message) {
      if (total) {
        bar.max = total;
        bar.value = done;
      } else {
        bar.removeAttribute('value');
      }
      text.textContent = message || (total ? `${Math.floor((done / total) * 100)} %` : '');
    },
  };
}

/** Asks before something that cannot be undone; resolves to true or false. */
export function confirmDialog(title, text, action) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', {}, text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', onclick: () => dialog.close('ok') }, action)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Asks for a name (a new folder, a rename); resolves to the text, or null when cancelled. */
export function promptDialog(title, label, value, action) {
  return new Promise((resolve) => {
    const input = h('input', { id: 'prompt-input', value: value ?? '', autocomplete: 'off', required: true });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'prompt-title' }, title),
      h('div', { class: 'field' }, h('label', { for: 'prompt-input' }, label), input),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary', value: 'ok' }, action)));
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'prompt-title' }, form);
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok' && input.value.trim() ? input.value.trim() : null);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.select();
  });
}
