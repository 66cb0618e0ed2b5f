// The original system's own browser clients (mishkah.store.js, its simple wrapper and IndexedDB
// adapter, unmodified, from ../shared/fixtures/mishkah/clients) driven in Debian's headless
// Chromium against our server, injected into a page as the old apps do with script tags. Every
// difference in behaviour is a server fix, never an edit of a client.
//
// Real data when the fixtures are there (branch `dar`), else the repo's own data/ (branch
// `demo`); under CI=true missing fixtures are a failure, as in the Rust tests.
import { chromium } from 'playwright-core';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { root, startServer } from './server.mjs';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const fixtures = process.env.MISHKAH_FIXTURES || path.join(root, '../shared/fixtures');
const clients = path.join(fixtures, 'mishkah/clients');
const realData = path.join(fixtures, 'mishkah/data');
const real = existsSync(path.join(realData, 'modules.json')) && existsSync(path.join(clients, 'mishkah.store.js'));
if (!real) {
  if (process.env.CI === 'true') {
    console.error(`CI=true but the fixtures are missing at ${fixtures} (set MISHKAH_FIXTURES)`);
    process.exit(1);
  }
  console.log(`legacy clients: fixtures not found at ${fixtures}; skipped (they are the old clients themselves)`);
  process.exit(0);
}
const branch = 'dar';

/** The server on the legacy page's static directory (again on `port`, for a restart). */
const serve = (dataDir, staticDir, port = 0) => startServer(dataDir, { port, args: ['--static', staticDir], quiet: true });

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-legacy-'));
  const dataDir = path.join(tmp, 'data');
  cpSync(realData, dataDir, { recursive: true });
  // A blank page of the server's own origin (the simple store fetches from `location.origin`).
  const staticDir = path.join(tmp, 'static');
  mkdirSync(staticDir);
  writeFileSync(path.join(staticDir, 'legacy.html'), '<!doctype html><meta charset="utf-8"><title>legacy</title>');
  let srv = await serve(dataDir, staticDir);
  const { port, base } = srv;

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const checks = [];
  const check = async (name, fn) => { console.log(`${new Date().toISOString()} ${name}`); await fn(); checks.push(name); console.log(`ok - ${name}`); };
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${base}/legacy.html`);
    for (const file of ['mishkah-indexeddb.js', 'mishkah.store.js', 'mishkah.simple-store.js']) {
      await page.addScriptTag({ path: path.join(clients, file) });
    }
    const wsUrl = `ws://127.0.0.1:${port}/ws`;
    const seededItems = (await (await fetch(`${base}/api/branches/${branch}/modules/pos/tables/menu_items`)).json()).count;

    // Helpers inside the page: two stores of one branch, and a way to wait for a condition.
    await page.evaluate(({ wsUrl, branch }) => {
      const quiet = { info() {}, debug() {}, warn() {}, error: console.error };
      window.t = {
        make: (extra = {}) => window.createStore({ branchId: branch, moduleId: 'pos', wsUrl, useIndexedDB: false, logger: quiet, ...extra }),
        until: async (what, test, ms = 8000) => {
          const end = Date.now() + ms;
          while (Date.now() < end) { const v = test(); if (v) return v; await new Promise((r) => setTimeout(r, 25)); }
          throw new Error(`timed out waiting for ${what}`);
        },
        row: (store, table, id) => store.listTable(table).find((r) => String(r.id) === String(id)),
        frames: (store, type) => store.logHistory(500).map((e) => e.payload).filter((p) => p.type === type),
      };
    }, { wsUrl, branch });

    await check('connect: the snapshot arrives and ready() resolves with it', async () => {
      const n = await page.evaluate(async () => {
        window.a = t.make(); window.b = t.make();
        await Promise.all([a.connect(), b.connect()]);
        return a.listTable('menu_items').length;
      });
      assert.equal(n, seededItems);
    });

    await check('insert: a POS-style partial order_header is acknowledged, filled and seen by the other store', async () => {
      const r = await page.evaluate(async () => {
        const ack = await a.insert('order_header', { id: 'lg-o1', statusId: 'open', orderTypeId: 'dine_in', tableId: 'T1' });
        const seen = await t.until('the event in b', () => t.row(b, 'order_header', 'lg-o1'));
        // The two stores hear the event on their own sockets, in either order.
        const mine = await t.until('the event in a', () => t.row(a, 'order_header', 'lg-o1'));
        return { ack, seen, mine };
      });
      assert.equal(r.ack.type, 'server:ack');
      assert.equal(r.ack.entry.record.id, 'lg-o1');
      assert.equal(r.ack.entry.record.version, 1);
      assert.equal(r.seen.subtotal, 0, 'missing fields are filled with their defaults');
      assert.equal(typeof r.seen.openedAt, 'string');
      assert.deepEqual(r.mine, r.seen, 'the publisher hears its own event too');
    });

    await check('update: module:update with the original version rule, a stale one refused with a structured error', async () => {
      const r = await page.evaluate(async () => {
        const ack = await a.update('order_header', { id: 'lg-o1', version: 2, tableId: 'T2' });
        await t.until('b at version 2', () => t.row(b, 'order_header', 'lg-o1')?.version === 2);
        a.update('order_header', { id: 'lg-o1', version: 2, tableId: 'T9' }).catch(() => {});
        const error = await t.until('the refusal', () => t.frames(a, 'server:error').find((f) => f.code === 'version-conflict'));
        const log = t.frames(a, 'server:log').find((f) => f.level === 'error');
        return { ack, row: t.row(b, 'order_header', 'lg-o1'), error, log };
      });
      assert.equal(r.ack.entry.record.version, 2);
      assert.equal(r.row.tableId, 'T2');
      assert.equal(r.error.details.reason, 'stale-version');
      assert.ok(r.log, 'old clients still get the server:log line');
    });

    await check('merge: the other store merges the patch into its row', async () => {
      const r = await page.evaluate(async () => {
        await a.insert('dining_tables', { id: 'lg-t1', name: 'Patio', seats: 4 });
        await t.until('b has lg-t1', () => t.row(b, 'dining_tables', 'lg-t1'));
        await a.merge('dining_tables', { id: 'lg-t1', seats: 6 });
        return t.until('b merged', () => t.row(b, 'dining_tables', 'lg-t1')?.seats === 6 && t.row(b, 'dining_tables', 'lg-t1'));
      });
      assert.equal(r.name, 'Patio', 'fields the patch leaves out stay');
      assert.equal(r.version, 2);
    });

    await check('merge with the original version rule on a versioned table', async () => {
      const v = await page.evaluate(async () => {
        const ack = await a.merge('order_header', { id: 'lg-o1', version: 3, notes: [{ text: 'no onions' }] });
        await t.until('b at version 3', () => t.row(b, 'order_header', 'lg-o1')?.version === 3);
        return ack.entry.record.version;
      });
      assert.equal(v, 3);
    });

    await check('delete: the row leaves both stores', async () => {
      const gone = await page.evaluate(async () => {
        await a.remove('dining_tables', { id: 'lg-t1' });
        await t.until('b lost lg-t1', () => !t.row(b, 'dining_tables', 'lg-t1'));
        return t.until('a lost lg-t1', () => !t.row(a, 'dining_tables', 'lg-t1'));
      });
      assert.ok(gone);
    });

    await check('the simple store: createDB, watch and insert', async () => {
      const names = await page.evaluate(async ({ wsUrl, branch }) => {
        const db = window.createDB({ branchId: branch, moduleId: 'pos', wsUrl, useIndexedDB: false,
          logger: { info() {}, debug() {}, warn() {}, error: console.error }, objects: { tables: { table: 'dining_tables' } } });
        let latest = [];
        db.watch('tables', (rows) => { latest = rows; });
        await db.connect();
        await db.insert('tables', { id: 'lg-t2', name: 'Garden', seats: 2 });
        await t.until('watch sees lg-t2', () => latest.some((r) => r.id === 'lg-t2'));
        return db.list('tables').map((r) => r.id);
      }, { wsUrl, branch });
      assert.ok(names.includes('lg-t2'));
    });

    await check('the IndexedDB adapter: a cached snapshot is read before any network', async () => {
      const n = await page.evaluate(async ({ branch }) => {
        const quiet = { info() {}, debug() {}, warn() {}, error: console.error };
        const online = t.make({ useIndexedDB: true, logger: quiet });
        await online.connect();
        await t.until('cached', () => true);
        await new Promise((r) => setTimeout(r, 300));
        online.disconnect();
        const offline = window.createStore({ branchId: branch, moduleId: 'pos', wsUrl: 'ws://127.0.0.1:9/ws',
          useIndexedDB: true, autoReconnect: false, logger: quiet });
        const hit = new Promise((resolve) => offline.on('cache:hit', resolve));
        offline.connect().catch(() => {});
        await hit;
        return offline.listTable('menu_items').length;
      }, { branch });
      assert.equal(n, seededItems);
    });

    await check('reconnect: after the server restarts, the store resyncs and sees what changed meanwhile', async () => {
      await srv.stop('SIGTERM');
      srv = await serve(dataDir, staticDir, port);
      const res = await fetch(`${base}/api/branches/${branch}/modules/pos/tables/dining_tables`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ record: { id: 'lg-t3', name: 'Roof' } }),
      });
      assert.equal(res.status, 201);
      const r = await page.evaluate(async () => {
        await t.until('a resynced', () => t.row(a, 'dining_tables', 'lg-t3'), 20000);
        const ack = await a.insert('dining_tables', { id: 'lg-t4', name: 'Terrace' });
        await t.until('b heard it', () => t.row(b, 'dining_tables', 'lg-t4'), 20000);
        return ack.type;
      });
      assert.equal(r, 'server:ack', 'writes work again on the new connection');
    });
    console.log(`legacy clients: ${checks.length} checks passed against branch ${branch}`);
  } finally {
    await browser.close();
    await srv.stop('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
