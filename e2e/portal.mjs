// Walks through the portal in headless Chromium the way a customer does, against a real
// control plane with real agents, and reports what happened as JSON (last line of stdout).
//
//   ZLH_PORTAL='{"base": "...", "owner": {...}, "intruder": {...}, "admin": {...},
//                "jar": "mod.jar", "archive": "pack.zip", "outbox": "outbox.log",
//                "shots": "/dir", ...}' node portal.mjs
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(process.env.ZLH_PORTAL);
const browser = await chromium.launch({
  executablePath: process.env.ZLH_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { ok: false, steps: [], consoleErrors: [], unnamedControls: [], accessibility: [], audited: [], ids: {} };
// Status codes the browser may log as failed loads while a step provokes them on purpose.
let expectedStatuses = [];
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
const page = await context.newPage();
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  const text = message.text();
  if (expectedStatuses.some((status) => text.includes(`status of ${status}`))) return;
  result.consoleErrors.push(text);
});
page.on('pageerror', (error) => result.consoleErrors.push(`page error: ${error.message}`));

const SECOND = 1000;
const url = (hash) => `${config.base}/${hash}`;
// Every page that is photographed is also checked: each control has an accessible name, and
// axe-core (a maintained audit engine; evaluated through the DevTools protocol, which the
// portal's CSP does not cover) finds nothing serious or critical.
const axeSource = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
const audit = async (on, name) => {
  if (!(await on.evaluate(() => Boolean(window.axe)))) await on.evaluate(axeSource);
  const violations = await on.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.html.slice(0, 160)) })));
  result.audited.push(name);
  if (violations.length) result.accessibility.push({ page: name, violations });
};
const shot = async (name, on = page) => {
  const unnamed = await on.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
    .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120)));
  if (unnamed.length) result.unnamedControls.push({ page: name, unnamed });
  await audit(on, name);
  await on.screenshot({ path: `${config.shots}/${name}.png`, fullPage: true });
};
const heading = (name) => page.getByRole('heading', { level: 1, name });
const terminalText = () => page.locator('.xterm-rows').innerText();

/** What an authenticator app shows for a base32 secret `offset` seconds from now (RFC 6238). */
function authenticatorCode(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...secret.replace(/=+$/, '')].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor((Date.now() / 1000 + offset) / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const value = (mac.readUInt32BE(mac[mac.length - 1] & 0xf) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

/** The newest link to `path` the control plane mailed to `to` (its outbox). */
function newestLink(to, path) {
  const messages = readFileSync(config.outbox, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const links = messages.filter((m) => m.to === to).map((m) => m.body.match(/https?:\/\/\S+/)?.[0]);
  return links.filter((link) => link && new URL(link).pathname === path).at(-1);
}

async function step(name, work) {
  const began = Date.now();
  try {
    await work();
  } catch (error) {
    await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
    throw new Error(`${name}: ${error.message}`);
  }
  result.steps.push({ name, ms: Date.now() - began });
}

async function signIn(user) {
  await page.goto(url('#/signin'));
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading(/servers/).waitFor();
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in').waitFor();
}

async function openTab(name) {
  const tab = page.getByRole('tab', { name });
  // Clicking the open tab loads the page again; a step could act on the page being replaced.
  if ((await tab.getAttribute('aria-selected')) === 'true') return;
  await tab.click();
  await page.waitForFunction((tab) => document.querySelector(`#tab-${tab}`)?.getAttribute('aria-selected') === 'true', name.toLowerCase());
}

async function waitForState(state, timeout = 60 * SECOND) {
  await page.locator(`#server-state [data-state="${state}"]`).waitFor({ timeout });
}

async function typeInConsole(text) {
  // Keys typed before the console's socket is open go nowhere.
  await page.getByText(/^Connected/).waitFor({ timeout: 30 * SECOND });
  await page.locator('.xterm').click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

async function editFile(name, text) {
  await openTab('Files');
  await page.getByRole('button', { name, exact: true }).click();
  const editor = page.getByLabel(name, { exact: true });
  await editor.fill(text);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText(`Saved ${name}.`).waitFor();
  await page.getByRole('button', { name: 'Back to the folder' }).click();
}

/** What a file holds, as its Download button gives it. */
async function fileText(name) {
  await openTab('Files');
  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: `Download ${name}`, exact: true }).click();
  return readFileSync(await (await downloading).path(), 'utf8');
}

try {
  await step('sign up', async () => {
    await page.goto(url('#/signup'));
    await shot('sign-up');
    await page.getByLabel('Email').fill(config.owner.email);
    await page.getByLabel('Password').fill(config.owner.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByText(`We sent a link to ${config.owner.email}.`).waitFor();
    await shot('sign-up-sent');
    // Until the address is confirmed, the right password does not sign in.
    expectedStatuses = [403];
    await page.goto(url('#/signin'));
    await page.getByLabel('Email').fill(config.owner.email);
    await page.getByLabel('Password').fill(config.owner.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(`confirm your address first: open the link we sent to ${config.owner.email}`).waitFor();
    expectedStatuses = [];
    await page.goto(newestLink(config.owner.email, '/verify-email'));
    await heading('Your servers').waitFor();
    await page.getByText('No servers yet.').waitFor();
  });

  await step('sign out and in, and a reload keeps the session', async () => {
    await signOut();
    await shot('sign-in');
    await signIn(config.owner);
    await page.reload();
    await heading('Your servers').waitFor();
  });

  await step('create a game server and watch it run', async () => {
    await page.getByRole('link', { name: 'New server' }).first().click();
    await heading('New server').waitFor();
    await page.getByLabel('Name').fill('Survival');
    await page.getByLabel('Template').selectOption('slow-sample');
    await page.getByLabel('Message of the day').fill('Hello from the portal');
    await shot('new-server');
    await page.getByRole('button', { name: 'Create server' }).click();
    // What the agent says while the game starts (for three seconds), not only a clock.
    await page.getByText('The server is starting: waiting for its ready line.').waitFor({ timeout: 60 * SECOND });
    await shot('provisioning');
    await heading(/Survival/).waitFor({ timeout: 90 * SECOND });
    result.ids.game = Number(page.url().split('/').at(-1));
    // Where players connect: the node's address and the port allocated to this server.
    const address = await page.locator('code.address').innerText();
    if (!/^127\.0\.0\.1:\d+$/.test(address)) throw new Error(`the page shows no player address: ${address}`);
    // Live usage: the page's numbers and graphs, and the address copied for players.
    await page.locator('.usage-cell', { hasText: 'Memory' }).waitFor({ timeout: 15 * SECOND });
    await page.locator('.usage-cell', { hasText: /CPU\s*\d+%/ }).waitFor({ timeout: 15 * SECOND });
    if ((await page.locator('.usage').innerText()).includes('null')) throw new Error('the usage panel shows "null"');
    await page.locator('svg.spark').first().waitFor();
    await shot('usage');
    await page.getByRole('button', { name: 'Copy the address players connect to' }).click();
    await page.getByText(/^Copied 127\.0\.0\.1:\d+\.$|the address is 127\.0\.0\.1:\d+/).waitFor();
    await page.goto(url('#/servers'));
    await page.locator(`tr[data-server="${result.ids.game}"] [data-state="running"]`).waitFor({ timeout: 30 * SECOND });
    await page.locator(`tr[data-server="${result.ids.game}"] .usage-text`, { hasText: /CPU \d+% · \d/ }).waitFor({ timeout: 15 * SECOND });
    await shot('servers');
  });

  await step('the console shows output and takes commands', async () => {
    await page.goto(url(`#/servers/${result.ids.game}/console`));
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.includes('Done ('), null, { timeout: 30 * SECOND });
    await typeInConsole('say hello from the portal');
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.includes('[Server] hello from the portal'), null, { timeout: 15 * SECOND });
    // The command box does the same for people who prefer it.
    await page.getByLabel('Console command').fill('list');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.includes('players online'), null, { timeout: 15 * SECOND });
    // ↑ brings back what was sent through the box, ↓ goes forward again.
    await page.getByLabel('Console command').fill('say once more');
    await page.getByRole('button', { name: 'Send' }).click();
    // Sent (the box empties) before walking back.
    await page.waitForFunction(() => document.querySelector('input[aria-label="Console command"]')?.value === '');
    await page.getByLabel('Console command').press('ArrowUp');
    await page.getByLabel('Console command').press('ArrowUp');
    if (await page.getByLabel('Console command').inputValue() !== 'list') throw new Error('↑ does not walk the command history');
    await page.getByLabel('Console command').press('ArrowDown');
    if (await page.getByLabel('Console command').inputValue() !== 'say once more') throw new Error('↓ does not walk forward');
    await page.getByLabel('Console command').fill('');
    result.terminal = (await terminalText()).split('\n').filter((line) => line.trim()).slice(-6);
    await shot('console');
  });

  await step('settings are saved for the next start', async () => {
    await page.getByRole('tab', { name: 'Setup' }).click();
    const motd = page.getByLabel('Message of the day');
    await motd.waitFor();
    if (await motd.inputValue() !== 'Hello from the portal') throw new Error('the value given at creation is not shown');
    await motd.fill('x'.repeat(41));
    expectedStatuses = [400];
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Message of the day must be at most 40 characters').waitFor();
    expectedStatuses = [];
    await motd.fill('Changed in the portal');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Settings saved.').waitFor();
    await shot('setup');
    await page.getByRole('tab', { name: 'Console' }).click();
  });

  await step('a crash shows its classification', async () => {
    await typeInConsole('modcrash');
    await waitForState('crashed');
    result.crashBadge = await page.locator('#server-state').innerText();
    // When it restarts by itself, counted down to the second.
    const countdown = page.getByText(/^It crashed; it restarts in (\d+ min )?\d+ s\.$/);
    const first = await countdown.innerText();
    await page.waitForFunction((before) => {
      const now = [...document.querySelectorAll('p')].find((p) => p.textContent.startsWith('It crashed;'))?.textContent;
      return now && now !== before;
    }, first, { timeout: 5 * SECOND });
    result.countdown = [first, await countdown.innerText()];
    await openTab('Crashes');
    await page.locator('article.crash .badge', { hasText: 'mod_or_plugin_error' }).first().waitFor();
    await shot('crashes');
    if (await page.getByRole('button', { name: 'Start', exact: true }).isDisabled()) throw new Error('Start is disabled on a crashed server');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByText('Starting…').waitFor();
    await waitForState('running');
    // Only what can be done now is offered; the banner of a success goes by itself.
    await page.waitForFunction(() => [...document.querySelectorAll('button')].find((b) => b.textContent === 'Start')?.disabled);
    if (await page.getByRole('button', { name: 'Stop', exact: true }).isDisabled()) throw new Error('Stop is disabled on a running server');
    await page.getByText('Starting…').waitFor({ state: 'detached', timeout: 10 * SECOND });
  });

  await step('a stop that takes too long is ended with Kill', async () => {
    await page.getByRole('link', { name: 'New server' }).first().click();
    await page.getByLabel('Name').fill('Stubborn');
    await page.getByLabel('Template').selectOption('stubborn-sample');
    await page.getByLabel('Start it once it is ready').check();
    await page.getByRole('button', { name: 'Create server' }).click();
    await waitForState('running');
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await waitForState('stopping');
    await page.getByRole('button', { name: 'Kill', exact: true }).click();
    await page.getByText('Killed: it stops now.').waitFor();
    await waitForState('stopped');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete server' }).click();
    await heading('Your servers').waitFor();
    await page.goto(url(`#/servers/${result.ids.game}/crashes`));
    await waitForState('running');
  });

  await step('tabs work from the keyboard', async () => {
    await page.locator('[role=tab][aria-selected=true]').focus();
    await page.keyboard.press('Home');
    await page.waitForFunction(() => document.activeElement?.id === 'tab-console' && document.activeElement.getAttribute('aria-selected') === 'true');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => document.activeElement?.id === 'tab-files' && document.activeElement.getAttribute('aria-selected') === 'true');
  });

  await step('upload, edit and download a file', async () => {
    await openTab('Files');
    await page.locator('#upload-file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('first draft\n') });
    await page.getByRole('button', { name: 'notes.txt', exact: true }).waitFor();
    await shot('files');
    await editFile('notes.txt', 'edited in the browser\n');
    const downloading = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download notes.txt' }).click();
    const downloaded = await downloading;
    result.downloaded = readFileSync(await downloaded.path(), 'utf8');
    if (result.downloaded !== 'edited in the browser\n') throw new Error(`downloaded ${JSON.stringify(result.downloaded)}`);
  });

  await step('the editor keeps what it cannot edit, and asks before dropping edits', async () => {
    await openTab('Files');
    await page.locator('#upload-file').setInputFiles(config.binary);
    await page.getByRole('button', { name: 'blob.bin', exact: true }).click();
    await page.getByText('blob.bin is not text this editor can keep as it is.').waitFor();
    await page.locator('#upload-file').setInputFiles({ name: 'crlf.txt', mimeType: 'text/plain', buffer: Buffer.from('one\r\ntwo\r\n') });
    // A real code editor: JSON is highlighted.
    await page.locator('#upload-file').setInputFiles({ name: 'ops.json', mimeType: 'application/json', buffer: Buffer.from('{"motd": "hi", "max": 5}\n') });
    await page.getByRole('button', { name: 'ops.json', exact: true }).click();
    await page.locator('.cm-editor .cm-line span').first().waitFor();
    const colours = await page.locator('.cm-line span').evaluateAll((spans) => new Set(spans.map((s) => getComputedStyle(s).color)).size);
    if (colours < 2) throw new Error(`the JSON is not highlighted (${colours} colour)`);
    await shot('editor');
    await page.getByRole('button', { name: 'Back to the folder' }).click();
    await page.getByRole('button', { name: 'crlf.txt', exact: true }).click();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Nothing changed, so nothing was written.').waitFor();
    await page.getByLabel('crlf.txt', { exact: true }).fill('one\ntwo\nthree\n');
    await page.getByRole('button', { name: 'Back to the folder' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved crlf.txt.').waitFor();
    await page.getByLabel('crlf.txt', { exact: true }).fill('unsaved\n');
    await page.getByRole('button', { name: 'Back to the folder' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Discard changes' }).click();
    await page.getByRole('button', { name: 'New file' }).click();
    await page.getByRole('dialog').getByLabel('Name of the new file').fill('ops.txt');
    await page.getByRole('dialog').getByRole('button', { name: 'Create file' }).click();
    await page.getByLabel('ops.txt', { exact: true }).fill('op nobody\n');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved ops.txt.').waitFor();
    await page.getByRole('button', { name: 'Back to the folder' }).click();
    await page.getByRole('button', { name: 'Permissions of ops.txt' }).click();
    await page.getByRole('dialog').getByLabel('Mode (octal, such as 644 or 755)').fill('600');
    await page.getByRole('dialog').getByRole('button', { name: 'Set' }).click();
    await page.getByText('Permissions of ops.txt set to 600.').waitFor();
    await page.getByRole('button', { name: 'New folder' }).click();
    await page.getByRole('dialog').getByLabel('Name of the new folder').fill('saves');
    await page.getByRole('dialog').getByRole('button', { name: 'Create folder' }).click();
    await page.getByRole('button', { name: 'saves/', exact: true }).click();
    await page.getByText('This folder is empty.').waitFor();
    await page.reload();
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'saves' }).waitFor();
    await page.getByText('This folder is empty.').waitFor();
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'server' }).click();
    await page.getByRole('button', { name: 'Delete saves' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator('tr[data-file="saves"]').waitFor({ state: 'detached' });
  });

  await step('folders, archives, rename and delete', async () => {
    await openTab('Files');
    await page.locator('#upload-file').setInputFiles(config.archive);
    await page.getByRole('button', { name: 'Extract pack.zip' }).click();
    await page.getByText('Extracted pack.zip.').waitFor({ timeout: 30 * SECOND });
    await page.getByRole('button', { name: 'pack/', exact: true }).click();
    await page.getByRole('button', { name: 'readme.txt', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Rename readme.txt' }).click();
    await page.getByRole('dialog').getByLabel('New name').fill('renamed.txt');
    await page.getByRole('dialog').getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('button', { name: 'renamed.txt', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Delete renamed.txt' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('This folder is empty.').waitFor();
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'server' }).click();
    await page.getByRole('button', { name: 'Delete pack.zip' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator('tr[data-file="pack.zip"]').waitFor({ state: 'detached' });
  });

  await step('many files at once: a folder uploaded, files dropped, selected, packed, moved, deleted', async () => {
    await openTab('Files');
    const folder = join(mkdtempSync(join(tmpdir(), 'zlh-e2e-')), 'world-copy');
    mkdirSync(join(folder, 'region'), { recursive: true });
    writeFileSync(join(folder, 'level.dat'), 'level');
    writeFileSync(join(folder, 'region', 'r.0.0.mca'), 'region');
    await page.locator('#upload-folder').setInputFiles(folder);
    await page.getByText('Uploaded 2 files.').waitFor();
    await page.getByRole('button', { name: 'world-copy/', exact: true }).click();
    await page.getByRole('button', { name: 'region/', exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'server' }).click();
    await page.locator('tr[data-file="world-copy"]').waitFor();
    // Dropped on the list, as from a file manager.
    await page.locator('.drop-hint').evaluate((hint) => {
      const files = new DataTransfer();
      files.items.add(new File(['dropped one\n'], 'dropped-1.txt', { type: 'text/plain' }));
      files.items.add(new File(['dropped two\n'], 'dropped-2.txt', { type: 'text/plain' }));
      hint.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
    });
    await page.locator('tr[data-file="dropped-2.txt"]').waitFor();
    await page.getByRole('checkbox', { name: 'Select dropped-1.txt' }).check();
    await page.getByRole('checkbox', { name: 'Select dropped-2.txt' }).check();
    await page.getByText('2 items selected').waitFor();
    await shot('files-selection');
    await page.getByRole('button', { name: 'Compress…' }).click();
    await page.getByRole('dialog').getByLabel('Name of the archive').fill('dropped.tar.gz');
    await page.getByRole('dialog').getByRole('button', { name: 'Compress' }).click();
    await page.getByText('Compressed.').waitFor();
    await page.locator('tr[data-file="dropped.tar.gz"]').waitFor();
    await page.getByRole('checkbox', { name: 'Select dropped-1.txt' }).check();
    await page.getByRole('button', { name: 'Copy…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Copy' }).click();
    await page.locator('tr[data-file="dropped-1 copy.txt"]').waitFor();
    await page.getByRole('checkbox', { name: 'Select dropped-1.txt' }).check();
    await page.getByRole('checkbox', { name: 'Select dropped-2.txt' }).check();
    await page.getByRole('button', { name: 'Move…' }).click();
    await page.getByRole('dialog').getByLabel(/^To the folder/).fill('moved');
    await page.getByRole('dialog').getByRole('button', { name: 'Move' }).click();
    await page.locator('tr[data-file="dropped-1.txt"]').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'moved/', exact: true }).click();
    await page.locator('tr[data-file="dropped-2.txt"]').waitFor();
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'server' }).click();
    const leftovers = ['world-copy', 'moved', 'dropped.tar.gz', 'dropped-1 copy.txt'];
    for (const name of leftovers) await page.getByRole('checkbox', { name: `Select ${name}` }).check();
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    for (const name of leftovers) await page.locator(`tr[data-file="${name}"]`).waitFor({ state: 'detached' });
  });

  await step('back up (named, locked, downloaded), change, restore', async () => {
    await openTab('Backups');
    await page.getByLabel('Name (optional)').fill('Before the change');
    await page.getByRole('button', { name: 'Create backup' }).click();
    await page.getByText('The backup "Before the change" was taken.').waitFor({ timeout: 60 * SECOND });
    await page.getByRole('button', { name: 'Lock backup Before the change' }).click();
    await page.locator('.badge.locked').waitFor();
    if (!(await page.getByRole('button', { name: 'Delete backup Before the change' }).isDisabled())) throw new Error('a locked backup can be deleted');
    const downloading = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download backup Before the change' }).click();
    const archive = readFileSync(await (await downloading).path());
    result.backupDownload = { bytes: archive.length, zstd: archive.subarray(0, 4).toString('hex') === '28b52ffd' };
    if (!result.backupDownload.zstd) throw new Error(`the download is not a zstd archive: ${JSON.stringify(result.backupDownload)}`);
    await shot('backups');
    await editFile('notes.txt', 'changed after the backup\n');
    await openTab('Backups');
    await page.getByRole('button', { name: 'Restore backup Before the change' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click();
    await page.getByText('The backup was restored.').waitFor({ timeout: 60 * SECOND });
    result.restored = await fileText('notes.txt');
    if (result.restored !== 'edited in the browser\n') throw new Error(`after the restore: ${JSON.stringify(result.restored)}`);
    await waitForState('running');
    await openTab('Backups');
    await page.getByRole('button', { name: 'Rename backup Before the change' }).click();
    await page.getByRole('dialog').getByLabel('Name of the backup').fill('Kept for good');
    await page.getByRole('dialog').getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('button', { name: 'Unlock backup Kept for good' }).click();
    await page.getByRole('button', { name: 'Delete backup Kept for good' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No backups yet.').waitFor();
  });

  await step('schedules: made, run by hand, changed, deleted', async () => {
    await openTab('Schedules');
    await page.getByText('No schedules yet.').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Announce');
    await page.getByLabel('When (cron, UTC)').fill('30 4 * * 1-5');
    await page.getByLabel('Step 1: command or backup name').fill('say hello from a schedule');
    await page.getByRole('button', { name: 'Add step' }).click();
    await page.getByLabel('Step 2: action').selectOption('backup');
    await page.getByLabel('Step 2: command or backup name').fill('scheduled');
    await page.getByLabel('Step 2: seconds to wait first').fill('1');
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await page.getByText(/^Saved Announce: /).waitFor();
    const card = page.locator('.card.schedule[data-schedule="Announce"]');
    await card.getByText('It has not run yet.').waitFor();
    await page.getByRole('button', { name: 'Run now: Announce' }).click();
    await card.locator('.badge.succeeded').waitFor({ timeout: 60 * SECOND });
    await shot('schedules');
    await openTab('Console');
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.includes('[Server] hello from a schedule'), null, { timeout: 15 * SECOND });
    await openTab('Schedules');
    await page.getByRole('button', { name: 'Change Announce' }).click();
    await page.getByLabel('Run at these times').uncheck();
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await card.locator('.badge', { hasText: 'off' }).waitFor();
    await page.getByRole('button', { name: 'Delete Announce' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No schedules yet.').waitFor();
    await openTab('Backups');
    await page.getByRole('button', { name: 'Delete backup scheduled' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No backups yet.').waitFor();
  });

  await step('mods: upload, disable, remove', async () => {
    await openTab('Mods');
    await page.locator('#mod-file').setInputFiles(config.jar);
    const row = page.locator('tr[data-mod="portalmod-1.0.0.jar"]');
    await row.waitFor();
    result.mod = await row.innerText();
    await page.getByLabel('Enable Portal Mod').uncheck();
    await page.locator('tr[data-mod="portalmod-1.0.0.jar.disabled"]').waitFor();
    await shot('mods');
    await page.getByRole('button', { name: 'Remove portalmod-1.0.0.jar.disabled' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.getByText('No mods or plugins.').waitFor();
  });

  await step('a dev server with code-server opens the IDE', async () => {
    await page.goto(url('#/new'));
    await heading('New server').waitFor();
    await page.getByLabel('Name').fill('Workshop');
    await page.getByLabel('Dev container').check();
    await page.getByLabel('Runtime').selectOption(config.runtime);
    await page.getByLabel('Version').selectOption(config.version);
    await page.getByLabel(/Enable code-server/).check();
    await page.getByRole('button', { name: 'Create server' }).click();
    await heading(/Workshop/).waitFor({ timeout: 240 * SECOND });
    result.ids.dev = Number(page.url().split('/').at(-1));
    // Something in the workspace for the Explorer to list.
    await openTab('Files');
    await page.locator('#upload-file').setInputFiles({ name: config.workspaceFile, mimeType: 'text/markdown', buffer: Buffer.from('# From the portal\n') });
    await page.getByRole('button', { name: config.workspaceFile, exact: true }).waitFor();
    await openTab('IDE');
    await shot('dev-server');
    const opening = context.waitForEvent('page');
    await page.getByRole('button', { name: 'Open IDE' }).click();
    const ide = await opening;
    const ideErrors = [];
    ide.on('console', (message) => message.type() === 'error' && ideErrors.push(message.text()));
    ide.on('requestfailed', (request) => ideErrors.push(`${request.url()}: ${request.failure()?.errorText}`));
    await ide.waitForLoadState('domcontentloaded', { timeout: 60 * SECOND });
    await ide.locator('.monaco-workbench').waitFor({ timeout: 120 * SECOND }).catch(async (error) => {
      await ide.screenshot({ path: `${config.shots}/failed-ide.png` }).catch(() => {});
      throw new Error(`${error.message} at ${ide.url().replace(/token=[^&]*/, 'token=…')}; ${ideErrors.slice(0, 5).join('; ')}`);
    });
    const row = ide.locator('.explorer-folders-view .monaco-list-row', { hasText: config.workspaceFile });
    await row.first().waitFor({ timeout: 60 * SECOND });
    result.explorerRows = await ide.locator('.explorer-folders-view .monaco-list-row').allInnerTexts();
    result.ideUrl = ide.url().replace(/token=[^&]*/, 'token=…');
    await ide.screenshot({ path: `${config.shots}/ide.png` });
    await ide.close();
  });

  await step('a phone-width screen', async () => {
    await page.setViewportSize({ width: 360, height: 780 });
    // Every button on the page can be reached: none runs off the screen's right edge.
    const buttonsFit = async (where) => {
      const cut = await page.evaluate(() => [...document.querySelectorAll('button, a.button, label.button')]
        .filter((b) => b.offsetParent && b.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .map((b) => b.textContent));
      if (cut.length) throw new Error(`${where}: cut off at 360 px: ${cut.join(', ')}`);
    };
    await page.goto(url('#/servers'));
    await page.locator(`tr[data-server="${result.ids.game}"] [data-state]`).waitFor();
    await buttonsFit('servers');
    await shot('servers-phone');
    await page.goto(url(`#/servers/${result.ids.game}/files`));
    await page.getByRole('button', { name: 'notes.txt', exact: true }).waitFor();
    await buttonsFit('files');
    await shot('files-phone');
    await page.goto(url(`#/servers/${result.ids.game}/backups`));
    await page.getByRole('button', { name: 'Create backup' }).waitFor();
    await buttonsFit('backups');
    await shot('backups-phone');
    for (const [tab, ready] of [['setup', 'Save settings'], ['schedules', 'Save schedule'], ['users', 'Invite']]) {
      await page.goto(url(`#/servers/${result.ids.game}/${tab}`));
      await page.getByRole('button', { name: ready }).waitFor();
      await buttonsFit(tab);
      await shot(`${tab}-phone`);
    }
    await page.goto(url('#/new'));
    await page.getByRole('button', { name: 'Create server' }).waitFor();
    await buttonsFit('new server');
    await shot('new-server-phone');
    await page.goto(url(`#/servers/${result.ids.game}/console`));
    // A narrow terminal wraps lines anywhere.
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.replaceAll('\n', '').includes('Done ('), null, { timeout: 30 * SECOND });
    await shot('console-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('another user sees none of it', async () => {
    await signOut();
    await signIn(config.intruder);
    await page.getByText('No servers yet.').waitFor();
    expectedStatuses = [404];
    await page.goto(url(`#/servers/${result.ids.game}`));
    await page.getByRole('alert').filter({ hasText: 'no such server' }).waitFor();
    await page.goto(url(`#/servers/${result.ids.dev}/ide`));
    await page.getByRole('alert').filter({ hasText: 'no such server' }).waitFor();
    await shot('not-yours');
    expectedStatuses = [];
  });

  await step('the owner shares a server with chosen permissions, and takes it back at once', async () => {
    // The owner works in a browser of their own while the invited account watches in this one.
    const ownerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const owner = await ownerContext.newPage();
    await owner.goto(url('#/signin'));
    await owner.getByLabel('Email').fill(config.owner.email);
    await owner.getByLabel('Password').fill(config.owner.password);
    await owner.getByRole('button', { name: 'Sign in' }).click();
    await owner.locator(`tr[data-server="${result.ids.game}"]`).waitFor();
    await owner.goto(url(`#/servers/${result.ids.game}/users`));
    await owner.getByText('Nobody else has access to this server.').waitFor();
    await owner.getByLabel('Their email address').fill(config.intruder.email);
    await owner.getByRole('checkbox', { name: 'Console' }).check();
    await owner.getByRole('button', { name: 'Invite' }).click();
    await owner.getByText(`Invited ${config.intruder.email}: whoever signs in with that address sees this server.`).waitFor();
    await owner.locator(`[data-member="${config.intruder.email}"]`).waitFor();
    await shot('users', owner);

    await page.goto(url('#/servers'));
    await page.locator(`tr[data-server="${result.ids.game}"]`, { hasText: 'shared with you' }).waitFor();
    await page.goto(url(`#/servers/${result.ids.game}`));
    await page.waitForFunction(() => document.querySelector('.xterm-rows')?.innerText.includes('Done ('), null, { timeout: 30 * SECOND });
    const tabs = await page.getByRole('tab').allInnerTexts();
    if (tabs.join(',') !== 'Console,Crashes') throw new Error(`an account with the console permission sees tabs ${tabs}`);
    if (await page.getByRole('button', { name: 'Start' }).isVisible() || await page.getByRole('button', { name: 'Delete' }).isVisible()) {
      throw new Error('power and delete are offered without their permission');
    }
    await shot('shared-console');

    // Taken back while the console is open: it closes at once and says so.
    expectedStatuses = [404];
    await owner.getByRole('button', { name: `Remove ${config.intruder.email}` }).click();
    await owner.getByRole('dialog').getByRole('button', { name: 'Remove access' }).click();
    await owner.getByText(`${config.intruder.email} no longer has access.`).waitFor();
    await page.getByText('The console closed: no such server.').waitFor({ timeout: 10 * SECOND });
    await ownerContext.close();
    await page.goto(url('#/servers'));
    await page.getByText('No servers yet.').waitFor();
    expectedStatuses = [];
  });

  await step('the session is in cookies no script can read, refreshed silently', async () => {
    await page.goto(url('#/servers'));
    await page.getByText('No servers yet.').waitFor();
    const cookie = async (name) => (await context.cookies()).find((c) => c.name === name);
    const access = await cookie('zlh_access');
    const refresh = await cookie('zlh_refresh');
    if (!access?.httpOnly || !refresh?.httpOnly || access.sameSite !== 'Strict') {
      throw new Error(`the session cookies are not HttpOnly and SameSite=Strict: ${JSON.stringify([access, refresh])}`);
    }
    const visible = await page.evaluate(() => document.cookie + JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    if (visible.includes(access.value) || visible.includes(refresh.value)) throw new Error('a script can read the session');
    // A request another site's page could make (no portal header) is refused, cookie or not.
    expectedStatuses = [403];
    const forged = await page.evaluate(async () => (await fetch('/api/servers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
    if (forged !== 403) throw new Error(`a request without the portal header was not refused: ${forged}`);
    // An expired access cookie is refreshed on the next request, the refresh cookie rotated.
    expectedStatuses = [401];
    await context.addCookies([{ ...access, value: 'expired' }]);
    await page.reload();
    await page.getByText('No servers yet.').waitFor();
    if ((await cookie('zlh_access')).value === 'expired' || (await cookie('zlh_refresh')).value === refresh.value) {
      throw new Error('the session was not refreshed');
    }
    expectedStatuses = [];
  });

  await step('an expired session goes to sign-in', async () => {
    expectedStatuses = [401];
    await context.addCookies([{ ...(await context.cookies()).find((c) => c.name === 'zlh_refresh'), value: 'revoked' }]);
    await context.clearCookies({ name: 'zlh_access' });
    await page.goto(url('#/servers'));
    await page.getByText('Your session has ended. Sign in again to continue.').waitFor();
    expectedStatuses = [];
  });

  await step('an admin sees every user and suspends one', async () => {
    await signIn(config.admin);
    await page.locator(`tr[data-server="${result.ids.game}"]`).waitFor();
    await page.getByRole('link', { name: 'Admin' }).click();
    await heading('Users').waitFor();
    await page.getByRole('button', { name: `Suspend ${config.intruder.email}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Suspend' }).click();
    await page.locator(`tr[data-user="${config.intruder.email}"] .badge`, { hasText: 'suspended' }).waitFor();
    // A new account with a password shown once, promoted, demoted and deleted.
    await page.getByLabel('Email').fill('helper@example.com');
    await page.getByLabel('Role').selectOption('user');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('Created helper@example.com.').waitFor();
    await shot('admin');
    await page.getByRole('button', { name: 'Make admin: helper@example.com' }).click();
    await page.getByRole('button', { name: 'Make user: helper@example.com' }).waitFor();
    await page.getByRole('button', { name: 'Delete helper@example.com' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator('tr[data-user="helper@example.com"]').waitFor({ state: 'detached' });
  });

  await step('an admin imports an egg, removes a template and restores it', async () => {
    await heading('Templates').waitFor();
    await page.getByLabel('Egg', { exact: true }).fill(readFileSync(config.egg, 'utf8'));
    await page.getByRole('button', { name: 'Import egg' }).click();
    await page.getByText('Imported as the template wesnoth-server-debian.').waitFor();
    await page.locator('tr[data-template="wesnoth-server-debian"]').waitFor();
    await page.getByLabel('Egg', { exact: true }).fill('{"meta": ');
    expectedStatuses = [400];
    await page.getByRole('button', { name: 'Import egg' }).click();
    await page.getByText(/this is not an egg/).waitFor();
    expectedStatuses = [];
    await page.getByRole('button', { name: 'Remove minecraft-java' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.locator('tr[data-template="minecraft-java"] .badge', { hasText: 'removed' }).waitFor();
    await shot('admin-templates');
    await page.getByRole('button', { name: 'Restore minecraft-java' }).click();
    await page.getByText('The built in template minecraft-java is back.').waitFor();
    await page.getByRole('button', { name: 'Edit sample' }).click();
    await page.getByLabel('Template file (TOML)').waitFor();
    await shot('admin-template-editor');
    await page.getByRole('button', { name: 'Close' }).click();
  });

  await step('an admin sees each server\'s node and limits, and manages the artifact store', async () => {
    await page.goto(url('#/servers'));
    const node = await page.locator(`tr[data-server="${result.ids.game}"] td.node`).innerText();
    if (!node || node === '—') throw new Error(`no node shown for the game server: ${node}`);
    await page.locator(`tr[data-server="${result.ids.game}"] td.limits`).waitFor();
    await shot('admin-servers');
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Artifacts' }).waitFor();
    await page.getByLabel('Artifact kind').selectOption('mod');
    await page.getByLabel('Artifact name').fill('extra');
    await page.getByLabel('Artifact version').fill('1.0');
    await page.getByLabel('Artifact file').setInputFiles({ name: 'extra-1.0.jar', mimeType: 'application/java-archive', buffer: Buffer.from('not really a jar') });
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByText('Added extra 1.0; agents can install it now.').waitFor();
    await page.locator('tr[data-artifact="extra 1.0"]').waitFor();
    await shot('admin-artifacts');
    await page.getByRole('button', { name: 'Remove extra 1.0' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.locator('tr[data-artifact="extra 1.0"]').waitFor({ state: 'detached' });
    await page.setViewportSize({ width: 360, height: 780 });
    await shot('admin-phone');
    await page.goto(url('#/servers'));
    await page.locator(`tr[data-server="${result.ids.game}"]`).waitFor();
    await shot('admin-servers-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('a forgotten password is reset through the emailed link, then changed', async () => {
    await signOut();
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await heading('Reset your password').waitFor();
    await page.getByLabel('Email').fill(config.owner.email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await page.getByText('If that address has an account, a reset link is on its way.').waitFor();
    await page.goto(newestLink(config.owner.email, '/reset-password'));
    await heading('Choose a new password').waitFor();
    await page.getByLabel('New password').fill('reset in the browser');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByText('Your password was changed and every session ended.').waitFor();
    await signIn({ email: config.owner.email, password: 'reset in the browser' });
    await page.getByRole('link', { name: 'Account' }).click();
    await heading('Account').waitFor();
    await page.getByLabel('Current password').fill('reset in the browser');
    await page.getByLabel('New password').fill(config.owner.password);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('Your password was changed.').waitFor();
    // The activity log: this session's sign-in and the password changes are in it.
    await page.getByRole('link', { name: 'Servers' }).click();
    await page.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Recent activity' }).waitFor();
    await page.getByRole('cell', { name: 'Password changed' }).first().waitFor();
    // An API key: shown once, works for a script, listed without it, revoked.
    await page.getByLabel('Key name').fill('e2e script');
    await page.getByLabel('Scope').selectOption('read');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('Copy it now: it is not shown again.').waitFor();
    const key = await page.locator('[data-new-key]').textContent();
    const listed = await fetch(`${config.base}/api/servers`, { headers: { authorization: `Bearer ${key}` } });
    if (listed.status !== 200) throw new Error(`the new API key was refused: ${listed.status}`);
    await page.getByRole('cell', { name: 'read only' }).waitFor();
    await shot('account');
    await page.getByRole('button', { name: 'Revoke e2e script' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('No keys.').waitFor();
    const refused = await fetch(`${config.base}/api/servers`, { headers: { authorization: `Bearer ${key}` } });
    if (refused.status !== 401) throw new Error(`a revoked API key was accepted: ${refused.status}`);
  });

  await step('two-factor sign-in: set up with a QR code, asked for at sign-in, turned off', async () => {
    const card = page.locator('#two-factor');
    await card.getByLabel('Password', { exact: true }).fill(config.owner.password);
    await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
    await page.getByRole('img', { name: 'QR code for your authenticator app' }).waitFor();
    const secret = await page.locator('[data-totp-secret]').textContent();
    await page.getByLabel('Code from the app').fill(authenticatorCode(secret));
    await shot('two-factor-setup');
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByText('Two-factor sign-in is on.').waitFor();
    if ((await page.locator('[data-recovery-codes] li').count()) !== 10) throw new Error('ten recovery codes are shown');
    await shot('two-factor-on');
    await signOut();
    await page.getByLabel('Email').fill(config.owner.email);
    await page.getByLabel('Password').fill(config.owner.password);
    expectedStatuses = [401];
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Enter the code from your authenticator app.').waitFor();
    expectedStatuses = [];
    // The code of the next step: the one that turned it on is used.
    await page.getByLabel('Authentication code').fill(authenticatorCode(secret, 30));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading('Your servers').waitFor();
    await page.getByRole('link', { name: 'Account' }).click();
    await card.getByText('On. 10 recovery codes left.').waitFor();
    await card.getByLabel('Password', { exact: true }).last().fill(config.owner.password);
    await page.getByRole('button', { name: 'Turn off two-factor sign-in' }).click();
    await page.getByText('Two-factor sign-in is off.').waitFor();
  });

  result.ok = result.consoleErrors.length === 0 && result.unnamedControls.length === 0;
} catch (error) {
  result.error = String(error.message || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
