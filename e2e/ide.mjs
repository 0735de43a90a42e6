// Opens an IDE link in headless Chromium and reports what a person would see, as JSON:
// the workbench loaded, its WebSockets (and whether they stayed open), the Explorer's rows.
//
//   node ide.mjs <url> <file name the Explorer must show> <screenshot.png>
import { chromium } from 'playwright-core';

const [url, fileName, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.ZLH_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { ok: false, sockets: [], consoleErrors: [], redirects: [] };
try {
  const page = await browser.newPage();
  page.on('websocket', (ws) => {
    const socket = { url: ws.url().replace(/token=[^&]*/, 'token=…'), closed: false, error: null };
    result.sockets.push(socket);
    ws.on('close', () => { socket.closed = true; });
    ws.on('socketerror', (error) => { socket.error = String(error); });
  });
  page.on('console', (message) => { if (message.type() === 'error') result.consoleErrors.push(message.text()); });
  page.on('response', (response) => {
    if (response.status() >= 300 && response.status() < 400) {
      result.redirects.push({ status: response.status(), location: response.headers()['location'] ?? null });
    }
  });
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  await page.waitForSelector('.monaco-workbench', { timeout: 120_000 });
  result.workbench = true;
  // The Explorer lists the workspace: wait for the file's row.
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: fileName });
  await row.first().waitFor({ timeout: 60_000 });
  result.explorerRows = await page.locator('.explorer-folders-view .monaco-list-row').allInnerTexts();
  // The connection must hold: give the sockets time to fail if they were going to.
  await page.waitForTimeout(4_000);
  result.finalUrl = page.url().replace(/token=[^&]*/, 'token=…');
  result.title = await page.title();
  await page.screenshot({ path: screenshot });
  result.ok = true;
} catch (error) {
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
