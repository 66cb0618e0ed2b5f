// The browser store at scale, in Debian's headless Chromium against the real server.
//
//   node bigsync.mjs kills [rows]      the test (scripts/test): the browser killed (SIGKILL) at
//                                      several points of a first sync, reopened with the server
//                                      down, must show the module at the cursor it reports (or
//                                      nothing), keep its outbox, and resume online to the whole
//                                      module without walking again what it stored
//   node bigsync.mjs reopen [rows]     the test (scripts/test): a store that synced more rows than
//                                      it keeps in memory, reopened with the server down, shows
//                                      them all through IndexedDB (counts, a filtered page, rows
//                                      equal to the server's), takes a write, and sends it online
//   node bigsync.mjs bench [rows...]   numbers for docs/BENCHMARKS.md: first sync, heap, a cached
//                                      reopen with the server down (reported, never asserted)
//
// The store reaches the server through a TCP proxy the test can cut (the server "down"); the page
// is served from the proxy's origin by the test itself (request interception under /bigsync/), so
// it loads with the server down and its IndexedDB stays that origin's. Chromium runs on a profile directory of its own and is killed for real.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { root, startServer } from './server.mjs';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const BRANCH = 'demo';

/** A TCP proxy on a port of its own, to whatever `target()` says; `down` refuses everything. */
async function proxy(target) {
  const open = new Set();
  const server = net.createServer((client) => {
    const port = target();
    if (!port) { client.destroy(); return; }
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => client.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, cut: () => { for (const s of open) s.destroy(); }, close: () => server.close() };
}

/** Adds `rows` order headers of ~20 fields through the atomic batch route. */
async function seed(base, rows) {
  const url = `${base}/api/branches/${BRANCH}/modules/pos/events/batch`;
  for (let start = 0; start < rows; start += 2000) {
    const events = [];
    for (let i = start; i < Math.min(rows, start + 2000); i++) {
      const id = `big-${String(i).padStart(7, '0')}`;
      events.push({ table: 'order_header', record: {
        id, tableId: `T${i % 40}`, orderType: 'dine_in', status: i % 3 ? 'open' : 'paid', stage: 'new',
        total: (i % 997) + 0.5, paidTotal: 0, openedBy: `cashier-${i % 7}`, guests: 1 + (i % 6),
        note: `order number ${i}`, shiftId: 'shift-1', posId: 'pos-1', posNumber: 1 + (i % 4),
        customerName: `Customer ${i % 1000}`, discount: 0, tax: 0.14, currency: 'EGP', source: 'bench',
      } });
    }
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }) });
    assert.equal(r.status, 200, await r.text());
  }
}

/** Rows per table and the head, as the server has them now. */
async function truth(base) {
  const snapshot = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/tables`)).json();
  const log = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/events?limit=1`)).json();
  return { counts: snapshot.tables, head: log.lastSequence };
}

/** Chromium on `profile`, killable for real (SIGKILL), driven over CDP. */
async function launch(profile, port) {
  const app = `http://127.0.0.1:${port}/bigsync`;
  const proc = spawn(chromiumPath, ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // The page comes from request interception, so Chromium cannot tell it is on the loopback
    // address it names: without this, its socket to that same address is refused.
    '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests',
    '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const endpoint = await new Promise((resolve, reject) => {
    let log = '';
    proc.stderr.on('data', (c) => {
      log += c;
      const m = log.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error(`chromium exited (${code}): ${log}`)));
  });
  proc.stderr.resume();
  const browser = await chromium.connectOverCDP(endpoint);
  const context = browser.contexts()[0];
  await context.route(`${app}/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.startsWith('/bigsync/pkg/')) {
      const file = path.join(root, 'static', url.pathname.slice('/bigsync'.length));
      const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      return route.fulfill({ body: readFileSync(file), contentType: type });
    }
    return route.fulfill({ body: '<!doctype html><title>bigsync</title>', contentType: 'text/html' });
  });
  const page = await context.newPage();
  // The network is cut on purpose: failed fetches and sockets are expected, anything else is shown.
  const expected = /Failed to fetch|Failed to load resource|WebSocket connection|first sync stopped/;
  page.on('pageerror', (e) => console.error('page error:', e));
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !expected.test(m.text())) console.error(`page ${m.type()}: ${m.text()}`);
  });
  await page.goto(`${app}/`);
  const kill = () => new Promise((r) => { proc.once('exit', r); proc.kill('SIGKILL'); });
  return { browser, context, page, kill };
}

/** Opens the store `db` in the page against the proxy at `port` (connect resolves at once). The
 * kill test keeps fewer rows in memory than it syncs, so its reopened stores read through
 * IndexedDB as a store at a million rows does. */
async function open(page, port, db, memoryRows) {
  await page.evaluate(async ({ port, db, memoryRows }) => {
    const m = await import('/bigsync/pkg/mishkah_client.js');
    window.wasm = await m.default();
    window.store = m.createStore({ branchId: 'demo', moduleId: 'pos', wsUrl: `ws://127.0.0.1:${port}/ws`,
      httpUrl: `http://127.0.0.1:${port}`, dbName: db, autoReconnect: true, memoryRows });
    await window.store.connect();
  }, { port, db, memoryRows });
}

const shown = (page) => page.evaluate(async () => {
  const tables = ['order_header', 'dining_tables', 'menu_items', 'menu_categories', 'order_line'];
  const counts = {};
  for (const t of tables) counts[t] = await window.store.count(t);
  return { cursor: window.store.cursor(), pending: window.store.pending(), counts };
});

async function kills(rows) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-bigsync-'));
  cpSync(path.join(root, 'data'), path.join(tmp, 'data'), { recursive: true });
  const data = path.join(tmp, 'data');
  const server = await startServer(data);
  let up = true;
  const link = await proxy(() => (up ? server.port : null));
  const base = `http://127.0.0.1:${server.port}`;
  try {
    await seed(base, rows);
    const before = await truth(base);
    console.log(`seeded ${rows} order headers; the module's head is ${before.head}`);
    // How long a first sync takes here, to kill inside it.
    const timing = await launch(path.join(tmp, 'timing'), link.port);
    const started = Date.now();
    await open(timing.page, link.port, 'timing');
    await timing.page.evaluate(() => window.store.ready());
    const full = Date.now() - started;
    await timing.kill();
    console.log(`a first sync of ${rows} rows took ${full} ms; killing inside it`);
    // Before the first page is stored, between pages, between the last page and the delta, after;
    // each moved at random by up to 15% (the log says where each kill fell).
    const points = [0.15, 0.4, 0.7, 0.95, 1.5].map((at) => at * (0.85 + 0.3 * Math.random()));
    for (const [n, at] of points.entries()) {
      const db = `kill-${n}`;
      const profile = path.join(tmp, `profile-${n}`);
      let chrome = await launch(profile, link.port);
      let pages = 0;
      chrome.page.on('requestfinished', (r) => { if (r.url().includes('/pages?')) pages++; });
      await open(chrome.page, link.port, db, 5000);
      // A write made while the sync runs: in the outbox before it is ever sent.
      await chrome.page.evaluate((id) => { window.store.insert('dining_tables', { id, name: 'made mid-sync', seats: 2 }).catch(() => {}); }, db);
      await new Promise((r) => setTimeout(r, Math.round(full * at)));
      await chrome.kill();
      const walked = pages;

      // Reopened with the server down: the module at the cursor it reports, or nothing.
      up = false;
      link.cut();
      chrome = await launch(profile, link.port);
      await open(chrome.page, link.port, db, 5000);
      const offline = await shown(chrome.page);
      const ownWrite = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/tables/dining_tables/${db}`)).status;
      if (offline.cursor === 0) {
        // Nothing synced shows nothing but the store's own queued write.
        const { dining_tables: own, ...rest } = offline.counts;
        assert.equal(own, offline.pending, `kill ${n}: ${JSON.stringify(offline)}`);
        assert.deepEqual(Object.values(rest).filter((c) => c > 0), [], `kill ${n}: ${JSON.stringify(offline)}`);
      } else {
        assert.ok(offline.cursor >= before.head, `kill ${n}: ${JSON.stringify(offline)}`);
        assert.equal(offline.counts.order_header, before.counts.order_header, `kill ${n}: ${JSON.stringify(offline)}`);
        assert.equal(offline.counts.menu_items, before.counts.menu_items, `kill ${n}: ${JSON.stringify(offline)}`);
      }
      // The write is still queued — unless the server acknowledged it before the kill.
      assert.ok(offline.pending === 1 || ownWrite === 200, `kill ${n}: the outbox lost a write: ${JSON.stringify(offline)}`);

      // Online again: the walk resumes (never from the start), the write lands once.
      up = true;
      let resumed = 0;
      chrome.page.on('requestfinished', (r) => { if (r.url().includes('/pages?')) resumed++; });
      await chrome.page.evaluate(() => window.store.ready());
      await chrome.page.waitForFunction(() => window.store.pending() === 0, null, { timeout: 30000 });
      const online = await shown(chrome.page);
      const after = await truth(base);
      assert.equal(online.counts.order_header, after.counts.order_header, `kill ${n}: ${JSON.stringify(online)}`);
      assert.equal(online.counts.dining_tables, after.counts.dining_tables, `kill ${n}: ${JSON.stringify(online)}`);
      const written = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/tables/dining_tables/${db}`)).json();
      assert.equal(written.id ?? written.record?.id ?? written.row?.id, db, `kill ${n}: the queued write landed: ${JSON.stringify(written)}`);
      const totalPages = Math.ceil((before.head > 0 ? Object.values(before.counts).reduce((a, b) => a + b, 0) : 0) / 5000);
      // Of the pages fetched before the kill, the last two may not have been stored (one being
      // stored, the next on its way): the rest are not fetched again.
      if (offline.cursor === 0 && walked > 2) {
        assert.ok(resumed <= totalPages - (walked - 2), `kill ${n}: walked ${walked} pages before, ${resumed} after (of ${totalPages}): it started over`);
      }
      console.log(`kill ${n} at ${Math.round(full * at)} ms: ${walked} pages walked, offline ${JSON.stringify(offline.counts)} at ${offline.cursor}, `
        + `resumed with ${resumed} pages; pending ${offline.pending} → 0`);
      await chrome.kill();
    }
    console.log('bigsync kills: every reopen consistent, every outbox kept, every walk resumed');
  } finally {
    link.close();
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** JS heap used (CDP `Runtime.getHeapUsage`) and the wasm module's memory, in MB. */
async function memory(chrome) {
  chrome.cdp ??= await chrome.context.newCDPSession(chrome.page);
  const { usedSize } = await chrome.cdp.send('Runtime.getHeapUsage');
  const wasm = await chrome.page.evaluate(() => window.wasm?.memory?.buffer?.byteLength ?? 0);
  return { heap: usedSize / 1e6, wasm: wasm / 1e6 };
}

async function bench(sizes) {
  for (const rows of sizes) {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-bigsync-'));
    cpSync(path.join(root, 'data'), path.join(tmp, 'data'), { recursive: true });
    const server = await startServer(path.join(tmp, 'data'));
    let up = true;
    const link = await proxy(() => (up ? server.port : null));
    try {
      await seed(`http://127.0.0.1:${server.port}`, rows);
      const profile = path.join(tmp, 'profile');
      let chrome = await launch(profile, link.port);
      let peak = { heap: 0, wasm: 0 };
      const sample = setInterval(async () => {
        try {
          const m = await memory(chrome);
          peak = { heap: Math.max(peak.heap, m.heap), wasm: Math.max(peak.wasm, m.wasm) };
        } catch {}
      }, 250);
      const t0 = Date.now();
      // When the last page arrived: the walk's share of the time to `ready`.
      let walked = 0;
      chrome.page.on('requestfinished', (r) => { if (r.url().includes('/pages?')) walked = Date.now() - t0; });
      await open(chrome.page, link.port, 'bench');
      await chrome.page.evaluate(() => window.store.ready());
      const ready = Date.now() - t0;
      const readable = await chrome.page.evaluate(() => window.store.count('order_header'));
      clearInterval(sample);
      const settled = await memory(chrome);
      await chrome.page.close();
      await chrome.kill();
      up = false;
      link.cut();
      chrome = await launch(profile, link.port);
      const t1 = Date.now();
      await open(chrome.page, link.port, 'bench');
      // A cached start: the first answers before the network is up (it is down).
      const first = await chrome.page.evaluate(async () => {
        const t = performance.now();
        const rows = await window.store.find('order_header', { where: { status: 'open' }, limit: 50 });
        const ms = performance.now() - t;
        const c = performance.now();
        const open = await window.store.count('order_header', { where: { status: 'open' } });
        const countMs = performance.now() - c;
        const s = performance.now();
        const scanned = await window.store.count('order_header', { where: 'guests = 3' });
        return { rows: rows.length, ms, open, countMs, scanned, scanMs: performance.now() - s };
      });
      const reopened = Date.now() - t1;
      const count = await chrome.page.evaluate(() => window.store.count('order_header'));
      const cached = await memory(chrome);
      await chrome.kill();
      console.log(JSON.stringify({ rows, readyMs: ready, lastPageMs: walked, readable, peakHeapMB: +peak.heap.toFixed(1),
        peakWasmMB: +peak.wasm.toFixed(1), settledHeapMB: +settled.heap.toFixed(1),
        reopenOfflineMs: reopened, firstPage50: first, offlineCount: count,
        cachedHeapMB: +cached.heap.toFixed(1), cachedWasmMB: +cached.wasm.toFixed(1) }));
    } finally {
      link.close();
      await server.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

async function reopen(rows) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-bigsync-'));
  cpSync(path.join(root, 'data'), path.join(tmp, 'data'), { recursive: true });
  const server = await startServer(path.join(tmp, 'data'));
  let up = true;
  const link = await proxy(() => (up ? server.port : null));
  const base = `http://127.0.0.1:${server.port}`;
  try {
    await seed(base, rows);
    const profile = path.join(tmp, 'profile');
    let chrome = await launch(profile, link.port);
    await open(chrome.page, link.port, 'reopen');
    await chrome.page.evaluate(() => window.store.ready());
    const held = await chrome.page.evaluate(() => {
      try { window.store.listTable('order_header'); return 'held'; } catch (e) { return e.code; }
    });
    assert.equal(held, rows > 50000 ? 'not-held' : 'held', 'synchronous reads answer only from a whole module');
    await chrome.kill();

    up = false;
    link.cut();
    chrome = await launch(profile, link.port);
    await open(chrome.page, link.port, 'reopen');
    const sample = ['big-0000000', `big-${String(rows - 1).padStart(7, '0')}`, `big-${String(Math.floor(rows / 2)).padStart(7, '0')}`];
    const shown = await chrome.page.evaluate(async (sample) => {
      const s = window.store;
      const page = await s.find('order_header', { where: { status: 'paid' }, limit: 50 });
      const rows = {};
      for (const id of sample) rows[id] = await s.get('order_header', id);
      return { all: await s.count('order_header'), paid: await s.count('order_header', { where: { status: 'paid' } }),
        guests: await s.count('order_header', 'guests = 2'), page: page.map((r) => [r.id, r.status]), rows, cursor: s.cursor() };
    }, sample);
    const paid = Math.ceil(rows / 3);
    assert.equal(shown.all, rows, `all ${rows} rows are shown offline: ${shown.all}`);
    assert.equal(shown.paid, paid, 'an indexed count');
    assert.equal(shown.guests, Math.floor((rows + 4) / 6), 'a count read chunk by chunk');
    const expected = Array.from({ length: 50 }, (_, k) => [`big-${String(3 * k).padStart(7, '0')}`, 'paid']);
    assert.deepEqual(shown.page, expected, 'the first page of paid orders, in key order');
    for (const id of sample) {
      const server = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/tables/order_header/${id}`)).json();
      const row = server.record ?? server.row ?? server;
      for (const field of ['id', 'status', 'total', 'guests', 'note', 'version']) {
        assert.deepEqual(shown.rows[id][field], row[field], `${id}.${field} as the server has it`);
      }
    }
    // A write offline on a row the store does not hold in memory, then online.
    const target = sample[2];
    const after = await chrome.page.evaluate(async (id) => {
      window.store.merge('order_header', { id, note: 'changed offline' }).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
      return { pending: window.store.pending(), note: (await window.store.get('order_header', id)).note,
        found: (await window.store.find('order_header', { where: { note: 'changed offline' } })).length };
    }, target);
    assert.deepEqual(after, { pending: 1, note: 'changed offline', found: 1 }, 'the write shows at once');
    up = true;
    await chrome.page.waitForFunction(() => window.store.pending() === 0, null, { timeout: 30000 });
    const landed = await (await fetch(`${base}/api/branches/${BRANCH}/modules/pos/tables/order_header/${target}`)).json();
    assert.equal((landed.record ?? landed.row ?? landed).note, 'changed offline', 'the write landed');
    await chrome.kill();
    console.log(`bigsync reopen: ${rows} rows synced (synchronous reads: ${held}), reopened offline: all counted, `
      + 'a paid page in key order, rows as the server has them, a write shown and sent');
  } finally {
    link.close();
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'bench') await bench(args.length ? args.map(Number) : [20000, 100000]);
else if (mode === 'reopen') await reopen(Number(args[0] || 100000));
else await kills(Number(args[0] || 20000));
process.exit(0);
