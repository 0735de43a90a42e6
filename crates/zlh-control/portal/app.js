// The portal: hash routes, sign-in and account pages, the servers list, creating a server,
// and the admin page. The server page is in server.js.

import { api, ApiError, nextStep, session, whenSignedOut } from './api.js';
import { confirmDialog, field, h, mount, notice, when } from './dom.js';
import { serverPage } from './server.js';
import { templatesCard } from './templates.js';
import { artifactsCard } from './artifacts.js';
import { usageText, usageTracker } from './usage.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');

/** What the current page must stop when the person leaves it (timers, sockets). */
let leaving = [];
export function onLeave(stop) {
  leaving.push(stop);
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

whenSignedOut(() => {
  if (!location.hash.startsWith('#/signin')) go('#/signin?expired=1');
});

/** An API error as the person sees it: what happened, what to do. */
export function problem(error) {
  if (!(error instanceof ApiError)) console.warn(error);
  return notice('error', error.message || 'Something went wrong.', nextStep(error));
}

/** Runs a form's submit, showing progress on its button and errors above it. */
function submitting(form, status, work) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    mount(status);
    try {
      await work();
    } catch (error) {
      mount(status, problem(error));
    } finally {
      button.disabled = false;
    }
  });
}

/** Whether this host accepts new accounts (asked once; sign-up is offered only then). */
let registrationOpen = false;
const registration = api('GET', '/api/auth/registration')
  .then((answer) => { registrationOpen = answer.open; })
  .catch(() => {});

function renderNav() {
  const user = session.user();
  if (!user) {
    mount(nav, h('a', { href: '#/signin' }, 'Sign in'), registrationOpen ? h('a', { href: '#/signup' }, 'Sign up') : null);
    return;
  }
  mount(nav,
    h('a', { href: '#/servers' }, 'Servers'),
    h('a', { href: '#/new' }, 'New server'),
    user.role === 'admin' ? h('a', { href: '#/admin' }, 'Admin') : null,
    h('a', { href: '#/account' }, 'Account'),
    h('span', { class: 'who' }, user.email),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  session.clear();
  // What was typed into consoles stays with the person, not the browser.
  Object.keys(localStorage).filter((key) => key.startsWith('zlh.console-history.')).forEach((key) => localStorage.removeItem(key));
  await api('POST', '/api/auth/logout', {}).catch(() => {});
  go('#/signin');
}

function authPage(kind, query) {
  const email = h('input', { type: 'email', autocomplete: 'email', required: true });
  const password = h('input', {
    type: 'password', required: true, minlength: 10,
    autocomplete: kind === 'signup' ? 'new-password' : 'current-password',
  });
  const status = h('div');
  // Shown once the password was right for an account with two-factor sign-in.
  const code = h('input', { type: 'text', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: 32 });
  const codeField = h('div', { hidden: true }, field('Authentication code', code, 'From your authenticator app, or one of your recovery codes.'));
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, kind === 'signup' ? 'Create an account' : 'Sign in'),
    query.get('expired') ? notice('info', 'Your session has ended. Sign in again to continue.') : null,
    status,
    field('Email', email),
    field('Password', password, kind === 'signup' ? 'At least 10 characters.' : null),
    codeField,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, kind === 'signup' ? 'Create account' : 'Sign in'),
      kind === 'signup'
        ? h('a', { href: '#/signin' }, 'I have an account')
        : [registrationOpen ? h('a', { href: '#/signup' }, 'Create an account') : null, h('a', { href: '#/forgot' }, 'Forgot your password?')]));
  if (kind === 'signup' && !registrationOpen) {
    return h('div', { class: 'card narrow' }, h('h1', {}, 'Create an account'),
      notice('info', 'This host does not take new accounts here.', 'Ask its operator for one.'),
      h('a', { href: '#/signin' }, 'Sign in'));
  }
  submitting(form, status, async () => {
    if (kind === 'signup') {
      const started = await api('POST', '/api/auth/register', { email: email.value, password: password.value });
      form.reset();
      mount(status, notice('ok', `We sent a link to ${started.email}.`, 'Open it to confirm your address and sign in. It works for 24 hours.'));
      return;
    }
    try {
      const totpCode = codeField.hidden ? undefined : code.value;
      session.set(await api('POST', '/api/auth/login', { email: email.value, password: password.value, totpCode }));
    } catch (error) {
      if (error.code !== 'totp_required') throw error;
      codeField.hidden = false;
      code.focus();
      mount(status, notice('info', 'Enter the code from your authenticator app.'));
      return;
    }
    go('#/servers');
  });
  return form;
}

/** Where the link sent at sign-up lands: it confirms the address and signs in. */
async function verifyPage() {
  const token = new URLSearchParams(location.search).get('token') || '';
  // The token leaves the address bar whatever happens: it works once.
  history.replaceState(null, '', '/#/servers');
  try {
    session.set(await api('POST', '/api/auth/verify-email', { token }));
  } catch (error) {
    return [h('h1', {}, 'Confirm your address'), problem(error), h('p', {}, h('a', { href: '#/signin' }, 'Sign in'))];
  }
  renderNav();
  return serversPage();
}

function forgotPage() {
  const email = h('input', { type: 'email', autocomplete: 'email', required: true });
  const status = h('div');
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Reset your password'),
    h('p', { class: 'muted' }, 'We send a link to reset it to your email address.'),
    status,
    field('Email', email),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Send the link'), h('a', { href: '#/signin' }, 'Back to sign in')));
  submitting(form, status, async () => {
    await api('POST', '/api/auth/password-reset/request', { email: email.value });
    mount(status, notice('ok', 'If that address has an account, a reset link is on its way.', 'The link works once, for a limited time.'));
  });
  return form;
}

function resetPage() {
  const token = new URLSearchParams(location.search).get('token') || '';
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const status = h('div');
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Choose a new password'),
    status,
    field('New password', password, 'At least 10 characters.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set password')));
  submitting(form, status, async () => {
    await api('POST', '/api/auth/password-reset/confirm', { token, newPassword: password.value });
    // The token leaves the address bar, and the person signs in with the new password.
    history.replaceState(null, '', '/#/signin');
    mount(main, notice('ok', 'Your password was changed and every session ended.', 'Sign in with the new password.'), authPage('signin', new URLSearchParams()));
  });
  return form;
}

/** A server's state as a badge: lifecycle first, then the agent's state. */
export function stateBadge(server) {
  const status = server.status || {};
  let text;
  let kind;
  if (server.lifecycle && server.lifecycle !== 'ready') {
    [text, kind] = [server.lifecycle, 'provisioning'];
  } else if (server.install) {
    // Its install step runs, or failed: it cannot start yet.
    [text, kind] = [server.install === 'failed' ? 'install failed' : 'installing', server.install === 'failed' ? 'error' : 'provisioning'];
  } else if (status.unreachable) {
    [text, kind] = ['unreachable', 'unreachable'];
  } else {
    kind = status.state || 'unknown';
    text = kind;
    if (kind === 'crashed' && status.lastCrashClassification) text = `crashed: ${status.lastCrashClassification}`;
  }
  return h('span', { class: `badge ${kind}`, 'data-state': kind }, text);
}

async function serversPage() {
  const user = session.user();
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading servers…'));
  const page = [
    h('div', { class: 'row' }, h('h1', {}, user.role === 'admin' ? 'All servers' : 'Your servers'), h('a', { class: 'button primary', href: '#/new' }, 'New server')),
    list,
  ];
  // Admins see whose each server is, by address.
  const owners = user.role === 'admin'
    ? new Map((await api('GET', '/api/admin/users').catch(() => [])).map((u) => [u.id, u.email]))
    : new Map();
  const track = usageTracker();
  const refresh = async () => {
    try {
      const servers = await api('GET', '/api/servers');
      if (!servers.length) {
        mount(list, h('div', { class: 'card' }, h('p', {}, 'No servers yet.'), h('a', { class: 'button primary', href: '#/new' }, 'Create your first server')));
        return;
      }
      mount(list, h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Type'), h('th', {}, 'State'), h('th', { class: 'optional' }, 'Usage'), h('th', { class: 'optional' }, 'Created'),
          user.role === 'admin' ? [h('th', { class: 'optional' }, 'Owner'), h('th', { class: 'optional' }, 'Node'), h('th', { class: 'optional' }, 'Limits')] : null)),
        h('tbody', {}, servers.map((server) => h('tr', { 'data-server': server.id },
          h('td', {}, h('a', { href: `#/servers/${server.id}` }, server.name),
            server.ownerId !== user.id && user.role !== 'admin' ? h('span', { class: 'muted shared' }, ' · shared with you') : null),
          h('td', {}, server.type === 'dev' ? `dev · ${server.runtime ?? ''} ${server.version ?? ''}` : `game · ${server.template ?? 'custom'}`),
          h('td', {}, stateBadge(server)),
          h('td', { class: 'optional usage-text' }, usageText(track(server))),
          h('td', { class: 'optional' }, when(server.createdAt)),
          user.role === 'admin' ? [
            h('td', { class: 'optional' }, owners.get(server.ownerId) ?? `#${server.ownerId}`),
            h('td', { class: 'optional node' }, server.node ?? '—'),
            h('td', { class: 'optional limits' }, server.limits
              ? `${server.limits.memoryMb} MiB · ${server.limits.cpus} CPUs${server.limits.diskMb ? ` · ${server.limits.diskMb} MiB disk` : ''}`
              : 'none (local driver)'),
          ] : null))))));
    } catch (error) {
      mount(list, problem(error));
    }
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  onLeave(() => clearInterval(timer));
  return page;
}

async function newServerPage() {
  const [templates, runtimes] = await Promise.all([
    api('GET', '/api/templates'),
    api('GET', '/api/dev/runtimes').catch(() => []),
  ]);
  const name = h('input', { required: true, maxlength: 64, autocomplete: 'off' });
  const kindGame = h('input', { type: 'radio', name: 'kind', value: 'game', checked: true, id: 'kind-game' });
  const kindDev = h('input', { type: 'radio', name: 'kind', value: 'dev', id: 'kind-dev', disabled: !runtimes.length });
  const template = h('select', {}, templates.map((t) => h('option', { value: t.name }, t.name)));
  // Preselected: one that runs as it is (no files to upload first, not a command of one's own).
  template.value = (templates.find((t) => !t.required_files?.length && t.name !== 'custom') ?? templates[0])?.name ?? '';
  const templateHint = h('p', { class: 'hint' });
  const runtime = h('select', {}, runtimes.map((r) => h('option', { value: r.name }, r.name)));
  const version = h('select');
  const codeServer = h('input', { type: 'checkbox', id: 'code-server', checked: true });
  const fillVersions = () => {
    const chosen = runtimes.find((r) => r.name === runtime.value);
    mount(version, (chosen?.versions ?? []).map((v) => h('option', { value: v }, v)));
  };
  runtime.addEventListener('change', fillVersions);
  fillVersions();
  // What the chosen template lets its owner choose: an image, its variables, whether to start.
  const image = h('select');
  const imageField = field('Image', image);
  const variables = h('div');
  const start = h('input', { type: 'checkbox', id: 'start-now', checked: true });
  const chosenTemplate = () => templates.find((t) => t.name === template.value);
  const fillTemplate = () => {
    const chosen = chosenTemplate();
    templateHint.textContent = chosen?.description ?? '';
    mount(image, (chosen?.images ?? []).map((i) => h('option', { value: i.image }, i.label)));
    imageField.hidden = (chosen?.images ?? []).length < 2;
    mount(variables, (chosen?.variables ?? []).filter((v) => v.editable).map((v) => {
      const input = h('input', { value: v.value, 'data-env': v.env, autocomplete: 'off' });
      return field(v.name, input, v.description);
    }));
    // Files the game needs are uploaded before it first starts.
    start.checked = !(chosen?.required_files ?? []).length;
  };
  template.addEventListener('change', fillTemplate);
  fillTemplate();
  // `custom` (admins only): a command of one's own, one argument per line.
  const command = h('textarea', { class: 'code short', spellcheck: 'false', placeholder: '/usr/bin/my-server\n--port\n25565' });
  const readyPattern = h('input', { autocomplete: 'off', placeholder: 'Done \\(' });
  const customFields = h('div', {}, field('Command (one argument per line)', command),
    field('Ready line (a regular expression, optional)', readyPattern));
  const showCustom = () => { customFields.hidden = template.value !== 'custom'; };
  template.addEventListener('change', showCustom);
  showCustom();
  const gameFields = h('div', {}, field('Template', template), templateHint, customFields, imageField, variables,
    h('div', { class: 'check' }, start, h('label', { for: 'start-now' }, 'Start it once it is ready (leave off to upload files first)')));
  const devFields = h('div', { hidden: true },
    field('Runtime', runtime),
    field('Version', version),
    h('div', { class: 'check' }, codeServer, h('label', { for: 'code-server' }, 'Enable code-server (VS Code in the browser)')));
  const showKind = () => {
    gameFields.hidden = !kindGame.checked;
    devFields.hidden = !kindDev.checked;
  };
  kindGame.addEventListener('change', showKind);
  kindDev.addEventListener('change', showKind);
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'New server'),
    status,
    field('Name', name),
    h('fieldset', { class: 'field' }, h('legend', {}, 'Type'),
      h('div', { class: 'check' }, kindGame, h('label', { for: 'kind-game' }, 'Game server')),
      h('div', { class: 'check' }, kindDev, h('label', { for: 'kind-dev' }, runtimes.length ? 'Dev container' : 'Dev container (no runtimes in the catalog yet)'))),
    gameFields,
    devFields,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create server')));
  submitting(form, status, async () => {
    const began = Date.now();
    const wanted = name.value.trim();
    // What the new server's agent says it is doing (installing, starting), from the list.
    let doing = 'The server is ready when its agent reports it running. This can take a minute.';
    let looking = false;
    const look = async () => {
      if (looking) return;
      looking = true;
      try {
        const mine = (await api('GET', '/api/servers')).filter((s) => s.name === wanted && s.lifecycle === 'provisioning');
        const reason = mine.at(-1)?.status?.reason;
        if (reason && mine.at(-1).status.lastSeen) doing = `${reason[0].toUpperCase()}${reason.slice(1)}.`;
      } catch {
        // Only a progress display: the creation itself reports its errors.
      } finally {
        looking = false;
      }
    };
    const tick = () => {
      mount(status, notice('info', `Provisioning… ${Math.round((Date.now() - began) / 1000)} s`, doing));
      look();
    };
    tick();
    const timer = setInterval(tick, 1000);
    try {
      const body = kindDev.checked
        ? { name: name.value, type: 'dev', runtime: runtime.value, version: version.value, enable_code_server: codeServer.checked }
        : {
          name: name.value,
          type: 'game',
          template: template.value,
          ...(template.value === 'custom' ? {
            command: command.value.split('\n').map((a) => a.trim()).filter(Boolean),
            ...(readyPattern.value ? { ready_pattern: readyPattern.value } : {}),
          } : {}),
          start: start.checked,
          ...(image.value ? { image: image.value } : {}),
          variables: Object.fromEntries([...variables.querySelectorAll('input[data-env]')].map((i) => [i.dataset.env, i.value])),
        };
      const server = await api('POST', '/api/servers', body);
      go(`#/servers/${server.id}`);
    } finally {
      clearInterval(timer);
    }
  });
  return form;
}

/** What the activity log's actions are called on the page. */
const ACTIONS = {
  sign_in: 'Signed in',
  sign_in_failed: 'Failed sign-in',
  sign_out: 'Signed out',
  password_changed: 'Password changed',
  password_reset: 'Password reset',
  email_verified: 'Address confirmed',
  server_created: 'Server created',
  server_deleted: 'Server deleted',
  power: 'Power',
  limits_changed: 'Limits changed',
  files_changed: 'Files changed',
  backups_changed: 'Backups',
  mods_changed: 'Mods changed',
  ide_opened: 'IDE opened',
  account_suspended: 'Account suspended',
  account_unsuspended: 'Account unsuspended',
  api_key_created: 'API key created',
  api_key_revoked: 'API key revoked',
  two_factor_enabled: 'Two-factor sign-in turned on',
  two_factor_disabled: 'Two-factor sign-in turned off',
  recovery_code_used: 'Signed in with a recovery code',
  recovery_codes_replaced: 'New recovery codes',
  settings_changed: 'Host settings changed',
};

/** The newest entries of the account's activity log: what happened, to which server, from where. */
async function activityCard() {
  const entries = await api('GET', '/api/account/activity');
  return h('section', { class: 'card' },
    h('h2', {}, 'Recent activity'),
    entries.length === 0 ? h('p', { class: 'muted' }, 'Nothing yet.') : h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'What'), h('th', { class: 'optional' }, 'Server'), h('th', { class: 'optional' }, 'From'))),
      h('tbody', {}, entries.slice(0, 50).map((entry) => h('tr', {},
        h('td', {}, when(entry.at)),
        h('td', {}, [ACTIONS[entry.action] ?? entry.action, entry.detail ? ` (${entry.detail})` : '', entry.actorId ? ' by an administrator' : '']),
        h('td', { class: 'optional' }, entry.serverId ? `#${entry.serverId}` : ''),
        h('td', { class: 'optional' }, entry.address)))))));
}

async function accountPage() {
  return [passwordForm(), await twoFactorCard(), await apiKeysCard(), await activityCard()];
}

/** A password field and a button, for what takes the password again. */
function withPassword(label, run) {
  const password = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div');
  const form = h('form', {}, status, field('Password', password, 'Your password again, to be sure it is you.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, label)));
  submitting(form, status, () => run(password.value, status));
  return form;
}

/** Recovery codes, shown once. */
function recoveryCodesNotice(codes) {
  return h('div', { class: 'notice ok', role: 'status' },
    h('p', {}, 'Your recovery codes. Keep them somewhere safe: each signs you in once without your phone, and they are not shown again.'),
    h('ul', { class: 'codes', 'data-recovery-codes': '' }, codes.map((code) => h('li', {}, h('code', {}, code)))));
}

/** Two-factor sign-in: set up with a QR code and a first code, new recovery codes, turn off. */
async function twoFactorCard() {
  const card = h('section', { class: 'card', id: 'two-factor' });
  const show = async (...shown) => {
    const state = await api('GET', '/api/account/totp');
    const required = state.required && !state.enabled
      ? notice('error', 'This host requires two-factor sign-in. Set it up to use your account.') : null;
    if (!state.enabled) {
      mount(card, h('h2', {}, 'Two-factor sign-in'), required, shown,
        h('p', { class: 'muted' }, 'Off. With it on, signing in also takes a code from an authenticator app on your phone.'),
        withPassword('Set up two-factor sign-in', async (password) => enrol(await api('POST', '/api/account/totp', { password }))));
      return;
    }
    mount(card, h('h2', {}, 'Two-factor sign-in'), shown,
      h('p', {}, `On. ${state.recoveryCodesLeft} recovery codes left.`),
      withPassword('New recovery codes', async (password) => {
        const made = await api('POST', '/api/account/totp/recovery-codes', { password });
        await show(recoveryCodesNotice(made.recoveryCodes));
      }),
      state.required ? h('p', { class: 'muted' }, 'This host requires it, so it stays on.') : withPassword('Turn off two-factor sign-in', async (password) => {
        await api('POST', '/api/account/totp/disable', { password });
        await show(notice('ok', 'Two-factor sign-in is off.'));
      }));
  };
  const enrol = (enrolment) => {
    const code = h('input', { type: 'text', autocomplete: 'one-time-code', inputmode: 'numeric', required: true, maxlength: 8 });
    const status = h('div');
    const form = h('form', {}, status, field('Code from the app', code),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Turn on')));
    submitting(form, status, async () => {
      const made = await api('POST', '/api/account/totp/confirm', { code: code.value });
      await show(notice('ok', 'Two-factor sign-in is on.'), recoveryCodesNotice(made.recoveryCodes));
    });
    mount(card, h('h2', {}, 'Two-factor sign-in'),
      h('p', {}, 'Scan this with your authenticator app, then enter the code it shows.'),
      h('img', { class: 'qr', alt: 'QR code for your authenticator app', src: `data:image/svg+xml;base64,${btoa(enrolment.qrSvg)}` }),
      h('p', { class: 'muted' }, 'Or type this key into the app: ', h('code', { 'data-totp-secret': '' }, enrolment.secret)),
      form);
    code.focus();
  };
  await show();
  return card;
}

/** Personal API keys for scripts: made here (the key is shown once), listed, revoked. */
async function apiKeysCard() {
  const list = h('div');
  const status = h('div');
  const refresh = async () => {
    const keys = await api('GET', '/api/account/api-keys');
    mount(list, keys.length === 0 ? h('p', { class: 'muted' }, 'No keys.') : h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Scope'), h('th', { class: 'optional' }, 'Key'), h('th', { class: 'optional' }, 'Last used'), h('th', {}, ''))),
      h('tbody', {}, keys.map((key) => h('tr', {},
        h('td', {}, key.name),
        h('td', {}, key.scope === 'read' ? 'read only' : 'read and write'),
        h('td', { class: 'optional' }, h('code', {}, `${key.prefix}…`)),
        h('td', { class: 'optional' }, key.lastUsedAt ? when(key.lastUsedAt) : 'never'),
        h('td', { class: 'actions-cell' }, h('button', {
          type: 'button',
          class: 'danger',
          onclick: async () => {
            if (!(await confirmDialog('Revoke API key', `Scripts using ${key.name} are refused from now on.`, 'Revoke'))) return;
            try {
              await api('DELETE', `/api/account/api-keys/${key.id}`);
              mount(status);
              await refresh();
            } catch (error) {
              mount(status, problem(error));
            }
          },
        }, `Revoke ${key.name}`))))))));
  };
  const name = h('input', { type: 'text', required: true, maxlength: 64 });
  const scope = h('select', {}, h('option', { value: 'read' }, 'Read only'), h('option', { value: 'write' }, 'Read and write'));
  const form = h('form', {},
    field('Key name', name, 'What will use it, such as "backup script".'),
    field('Scope', scope, 'No key can change your password, manage keys, or open a console or an IDE.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create key')));
  submitting(form, status, async () => {
    const made = await api('POST', '/api/account/api-keys', { name: name.value, scope: scope.value });
    form.reset();
    mount(status, h('div', { class: 'notice ok', role: 'status' },
      h('p', {}, 'Your new key. Copy it now: it is not shown again.'),
      h('p', {}, h('code', { 'data-new-key': '' }, made.key))));
    await refresh();
  });
  await refresh();
  return h('section', { class: 'card' }, h('h2', {}, 'API keys'), status, list, form);
}

function passwordForm() {
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const status = h('div');
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Account'),
    h('p', { class: 'muted' }, `Signed in as ${session.user().email}.`),
    session.user().passwordGenerated
      ? notice('info', 'Choose a password of your own.', 'Yours was generated and shown in a terminal; change it before you go on.')
      : null,
    h('h2', {}, 'Change password'),
    status,
    field('Current password', current),
    field('New password', next, 'At least 10 characters. Your other sessions are signed out.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Change password')));
  submitting(form, status, async () => {
    const answer = await api('POST', '/api/auth/password', { currentPassword: current.value, newPassword: next.value });
    if (answer?.user) session.set(answer);
    form.reset();
    mount(status, notice('ok', 'Your password was changed.'));
    renderNav();
  });
  return form;
}

async function adminPage() {
  const me = session.user();
  if (me.role !== 'admin') return notice('error', 'Only administrators can see this page.');
  const table = h('div', { class: 'table-wrap' });
  const status = h('div');
  const refresh = async () => {
    const users = await api('GET', '/api/admin/users');
    mount(table, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', { class: 'optional' }, 'Created'), h('th', {}, 'Status'), h('th', {}, ''))),
      h('tbody', {}, users.map((user) => h('tr', { 'data-user': user.email },
        h('td', {}, user.email),
        h('td', {}, user.role),
        h('td', { class: 'optional' }, when(user.createdAt)),
        h('td', {}, user.suspended ? h('span', { class: 'badge failed' }, 'suspended')
          : user.emailVerified ? h('span', { class: 'badge running' }, 'active') : h('span', { class: 'badge stopped' }, 'address unconfirmed')),
        h('td', { class: 'actions-cell' }, user.twoFactor ? h('button', {
          type: 'button',
          'aria-label': `Reset two-factor for ${user.email}`,
          onclick: async () => {
            if (!(await confirmDialog('Reset two-factor sign-in', `${user.email} signs in with the password alone until they set it up again. Do this only for someone who lost their phone and recovery codes.`, 'Reset'))) return;
            try {
              await api('POST', `/api/admin/users/${user.id}/reset-two-factor`);
              mount(status);
              await refresh();
            } catch (error) {
              mount(status, problem(error));
            }
          },
        }, 'Reset two-factor') : null, user.id === me.id ? null : h('button', {
          type: 'button',
          'aria-label': user.suspended ? `Unsuspend ${user.email}` : `Suspend ${user.email}`,
          class: user.suspended ? '' : 'danger',
          onclick: async () => {
            if (!user.suspended && !(await confirmDialog('Suspend user', `${user.email} will be signed out and refused everywhere until unsuspended.`, 'Suspend'))) return;
            try {
              await api('POST', `/api/admin/users/${user.id}/${user.suspended ? 'unsuspend' : 'suspend'}`);
              mount(status);
              await refresh();
            } catch (error) {
              mount(status, problem(error));
            }
          },
        }, user.suspended ? 'Unsuspend' : 'Suspend'),
        user.id === me.id ? null : h('button', {
          type: 'button',
          'aria-label': user.role === 'admin' ? `Make user: ${user.email}` : `Make admin: ${user.email}`,
          onclick: () => change(async () => {
            await api('PATCH', `/api/admin/users/${user.id}`, { role: user.role === 'admin' ? 'user' : 'admin' });
          }),
        }, user.role === 'admin' ? 'Make user' : 'Make admin'),
        user.id === me.id ? null : h('button', {
          type: 'button',
          'aria-label': `Delete ${user.email}`,
          class: 'danger',
          onclick: async () => {
            if (!(await confirmDialog('Delete user', `${user.email} is deleted for good, with their sessions, keys and activity. Their servers must be deleted first.`, 'Delete'))) return;
            change(() => api('DELETE', `/api/admin/users/${user.id}`));
          },
        }, 'Delete')))))));
  };
  const change = async (work) => {
    try {
      await work();
      mount(status);
      await refresh();
    } catch (error) {
      mount(status, problem(error));
    }
  };
  // A new account: its password is generated and shown once here; its owner is asked for one
  // of their own at first sign-in.
  const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
  const role = h('select', {}, h('option', { value: 'user' }, 'User'), h('option', { value: 'admin' }, 'Administrator'));
  const made = h('div', { 'aria-live': 'polite' });
  const newUser = h('form', { class: 'card narrow' },
    h('h2', {}, 'New user'), made, field('Email', email), field('Role', role),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create user')));
  submitting(newUser, made, async () => {
    const created = await api('POST', '/api/admin/users', { email: email.value, role: role.value });
    mount(made, notice('ok', `Created ${created.user.email}.`, [`Their first password, shown once: `, h('code', {}, created.password)]));
    newUser.reset();
    await refresh();
  });
  await refresh();
  return [h('h1', {}, 'Users'), status, table, h('p', {}, h('a', { href: '#/servers' }, 'Every server is on the servers page.')), newUser, await settingsCard(),
    ...(await templatesCard(problem)), ...(await artifactsCard(problem))];
}

/** Host-wide settings: whose accounts must use two-factor sign-in. */
async function settingsCard() {
  const current = await api('GET', '/api/admin/settings');
  const policy = h('select', {},
    h('option', { value: 'none' }, 'Nobody (each person chooses)'),
    h('option', { value: 'admins' }, 'Administrators'),
    h('option', { value: 'everyone' }, 'Everyone'));
  policy.value = current.requireTwoFactor;
  const status = h('div');
  const form = h('form', { class: 'card narrow' },
    h('h2', {}, 'Host settings'),
    status,
    field('Require two-factor sign-in of', policy, 'Accounts without it can do nothing but set it up. Turn yours on first.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save settings')));
  submitting(form, status, async () => {
    await api('PUT', '/api/admin/settings', { requireTwoFactor: policy.value });
    mount(status, notice('ok', 'Saved. It applies at once.'));
  });
  return form;
}

/** Counts navigations: a page that finished loading after the next one began is dropped. */
let generation = 0;

async function route() {
  generation += 1;
  const mine = generation;
  for (const stop of leaving) stop();
  leaving = [];
  renderNav();
  const [path, search] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(search || '');
  const parts = (path || '/servers').split('/').filter(Boolean);
  await registration;
  let page;
  try {
    if (location.pathname === '/reset-password' && !location.hash) {
      page = resetPage();
    } else if (location.pathname === '/verify-email' && !location.hash) {
      page = await verifyPage();
    } else if (parts[0] === 'signin' || parts[0] === 'signup') {
      page = authPage(parts[0], query);
    } else if (parts[0] === 'forgot') {
      page = forgotPage();
    } else if (!session.user()) {
      go('#/signin');
      return;
    } else if (session.user().passwordGenerated && parts[0] !== 'account') {
      // A password shown in a terminal is changed before anything else.
      go('#/account');
      return;
    } else if (parts[0] === 'new') {
      page = await newServerPage();
    } else if (parts[0] === 'servers' && parts[1]) {
      page = await serverPage(Number(parts[1]), parts[2], { onLeave, problem, stateBadge, go, query });
    } else if (parts[0] === 'account') {
      page = await accountPage();
    } else if (parts[0] === 'admin') {
      page = await adminPage();
    } else {
      page = await serversPage();
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    if (error instanceof ApiError && error.code === 'two_factor_required' && parts[0] !== 'account') {
      go('#/account');
      return;
    }
    page = problem(error);
  }
  if (mine !== generation) return;
  mount(main, page);
  const heading = main.querySelector('h1');
  if (heading) document.title = `${heading.textContent} · ZeroLagHub`;
}

window.addEventListener('hashchange', route);
route();
