// The original system's own POS and kitchen apps (../shared/fixtures/mishkah/apps, unmodified)
// against our server, in Debian's headless Chromium, on branch remal and on dar: the POS starts
// and shows the menu, the cashier's PIN opens a shift, an order of three items is saved and
// numbered, a kitchen display opened before shows it live, start and finish store the job as
// ready and the POS sees it, and the order survives a reload and a second terminal with empty
// storage. Every difference in behaviour is a server fix, never an edit of an app.
//
// As the fixtures' README says: `window.basedomain` is pinned to the page's own origin before
// any script runs, and requests to any other host (a CSS CDN, menu photos) are aborted.
import { chromium } from 'playwright-core';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { root, startServer } from './server.mjs';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const fixtures = process.env.MISHKAH_FIXTURES || path.join(root, '../shared/fixtures');
const apps = path.join(fixtures, 'mishkah/apps');
const realData = path.join(fixtures, 'mishkah/data');
if (!existsSync(path.join(apps, 'pos/posv2.html')) || !existsSync(path.join(realData, 'modules.json'))) {
  if (process.env.CI === 'true') {
    console.error(`CI=true but the fixtures' apps are missing at ${apps} (set MISHKAH_FIXTURES)`);
    process.exit(1);
  }
  console.log(`original apps: not found at ${apps}; skipped (they are the original's own apps)`);
  process.exit(0);
}
// The cashier's PIN of each branch's seed (`employees`).
const branches = [{ id: 'remal', pin: '1122', prefix: 'REM-' }, { id: 'dar', pin: '1122', prefix: 'DAR-' }];

const until = async (what, test, ms = 15000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) { const v = await test(); if (v) return v; await new Promise((r) => setTimeout(r, 100)); }
  throw new Error(`timed out waiting for ${what}`);
};

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-apps-'));
  const dataDir = path.join(tmp, 'data');
  cpSync(realData, dataDir, { recursive: true });
  const { base, stop } = await startServer(dataDir, { args: ['--static', apps], quiet: true });
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const pageErrors = [];
  // A terminal with its own, empty browser storage.
  const terminal = async (pagePath, tag) => {
    const ctx = await browser.newContext();
    await ctx.addInitScript(() => {
      Object.defineProperty(window, 'basedomain', { get: () => location.origin, set: () => {}, configurable: false });
    });
    await ctx.route('**/*', (route) => (new URL(route.request().url()).origin === base ? route.continue() : route.abort()));
    const page = await ctx.newPage();
    page.on('pageerror', (e) => { pageErrors.push(`${tag}: ${e.message}`); console.error(`${tag} page error:`, e.message); });
    await page.goto(base + pagePath);
    return page;
  };
  const table = async (branch, name) =>
    (await (await fetch(`${base}/api/branches/${branch}/modules/pos/tables/${name}`)).json()).rows;
  const checks = [];
  const check = async (name, fn) => { console.log(`${new Date().toISOString()} ${name}`); await fn(); checks.push(name); console.log(`ok - ${name}`); };
  try {
    for (const { id: branch, pin, prefix } of branches) {
      const menu = (await table(branch, 'menu_items')).length;
      let kds, pos, orderId;
      await check(`${branch}: the kitchen display and the POS start with no page error and the POS shows the menu`, async () => {
        kds = await terminal(`/pos/kds.html?brname=${branch}`, `${branch} KDS`);
        pos = await terminal(`/pos/posv2.html?brname=${branch}`, `${branch} POS`);
        await pos.waitForSelector('[data-m-gkey="pos:shift:open"]', { timeout: 30000 });
        const shown = await until('the menu', async () => {
          const n = (await pos.$$('[data-m-gkey="pos:menu:add"]')).length;
          return n > 0 && n;
        });
        assert.equal(shown, menu, 'every menu item is on the screen');
        await kds.waitForSelector('[data-m-gkey="kds:tab:switch"]', { timeout: 30000 });
        assert.deepEqual(pageErrors, []);
      });
      await check(`${branch}: the cashier's PIN opens a shift (stored in pos_shift, written as pos_shifts)`, async () => {
        await pos.click('[data-m-gkey="pos:shift:open"]');
        await pos.fill('[data-m-gkey="pos:shift:pin"]', pin);
        await pos.click('[data-m-gkey="pos:shift:pin:confirm"]');
        const shift = await until('the shift row', async () => (await table(branch, 'pos_shift')).find((s) => s.status === 'open'));
        assert.equal(shift.isClosed, false);
        await pos.waitForSelector('[data-m-gkey="pos:shift:pin"]', { state: 'detached', timeout: 10000 });
      });
      await check(`${branch}: an order of three items is saved with its lines and logs, numbered ${prefix}…`, async () => {
        const items = await pos.$$('[data-m-gkey="pos:menu:add"]');
        for (const i of [0, 1, 2]) await items[i].click();
        await pos.click('[data-m-gkey="pos:tables:open"]');
        await pos.click('[data-m-gkey="pos:tables:card:tap"][data-table-id]');
        await pos.click('[data-m-gkey="ui:modal:close"]');
        await pos.click('[data-m-gkey="pos:order:save"][data-save-mode="save"]');
        const header = await until('the order header', async () => (await table(branch, 'order_header'))[0]);
        orderId = header.id;
        assert.match(orderId, new RegExp(`^${prefix}\\d{6}$`));
        const lines = await until('its lines', async () => {
          const l = (await table(branch, 'order_line')).filter((x) => x.orderId === orderId);
          return l.length === 3 && l;
        });
        assert.ok(lines.every((l) => l.quantity === 1 && l.unitPrice > 0), 'quantities and prices are stored');
        assert.equal((await table(branch, 'order_status_log')).filter((x) => x.orderId === orderId).length >= 1, true);
        assert.equal((await table(branch, 'order_line_status_log')).filter((x) => x.orderId === orderId).length, 3);
        // The POS re-inserts the header it just saved over the WebSocket: fields it leaves out stay.
        await until('the re-insert', async () => (await table(branch, 'order_header'))[0].orderNumber === orderId);
        const again = (await table(branch, 'order_header'))[0];
        assert.ok(again.shiftId && again.posId, 'the shift and the till survive the re-insert');
        assert.ok(Array.isArray(again.notes), 'notes stay a list');
      });
      await check(`${branch}: the kitchen display opened before shows the order live; start and finish store the job as ready`, async () => {
        const tabs = await kds.$$eval('[data-m-gkey="kds:tab:switch"]', (els) => els.map((e) => e.getAttribute('data-section-id')));
        const job = await until('the job ticket', async () => (await table(branch, 'job_order_header')).find((j) => j.orderId === orderId));
        const station = tabs.find((t) => t === job.stationId) || tabs[1];
        await kds.click(`[data-m-gkey="kds:tab:switch"][data-section-id="${station}"]`);
        await until('the order on the kitchen screen', async () => (await kds.evaluate(() => document.body.innerText)).includes(orderId));
        await kds.click(`[data-m-gkey="kds:job:start"][data-job-id="${job.id}"]`);
        await until('the job started', async () => (await table(branch, 'job_order_header')).find((j) => j.id === job.id).status === 'in_progress');
        await kds.click(`[data-m-gkey="kds:job:finish"][data-job-id="${job.id}"]`);
        await until('the job ready', async () => (await table(branch, 'job_order_header')).find((j) => j.id === job.id).status === 'ready');
        const details = await until('its lines ready', async () => {
          const d = (await table(branch, 'job_order_detail')).filter((x) => x.jobOrderId === job.id);
          return d.length >= 1 && d.every((x) => x.status === 'ready') && d;
        });
        assert.ok(details.length >= 1);
        const seen = await until('the POS sees the job ready', () => pos.evaluate((jobId) => {
          const db = window.__POS_DB__;
          const rows = [...(db?.list?.('job_order_header') || []), ...(db?.store?.listTable?.('job_order_header') || [])];
          return rows.find((j) => j.id === jobId)?.status;
        }, job.id).then((s) => s === 'ready' && s));
        assert.equal(seen, 'ready');
      });
      await check(`${branch}: a reload and a second terminal with empty storage list the order`, async () => {
        const listed = async (page) => until('the order in the saved orders', async () => {
          const r = await page.evaluate(async (b) => (await fetch(`/api/branches/${b}/modules/pos/orders?include=lines,payments`)).json(), branch);
          return r.orders?.find((o) => o.id === orderId);
        });
        await pos.reload();
        await pos.waitForSelector('[data-m-gkey="pos:shift:open"], [data-m-gkey="pos:shift:summary"]', { timeout: 30000 });
        const order = await listed(pos);
        assert.equal(order.lines.length, 3);
        const second = await terminal(`/pos/posv2.html?brname=${branch}`, `${branch} POS 2`);
        await second.waitForSelector('[data-m-gkey="pos:orders:open"]', { timeout: 30000 });
        await listed(second);
        await second.click('[data-m-gkey="pos:orders:open"]');
        await until('the order in the orders list', async () => (await second.evaluate(() => document.body.innerText)).includes(orderId));
        assert.deepEqual(pageErrors, []);
      });
    }
  } finally {
    await browser.close();
    await stop('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`original apps: ${checks.length} checks passed`);
}

main().catch((e) => { console.error(e); process.exit(1); });
