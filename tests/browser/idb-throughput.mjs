// How fast this Chromium's IndexedDB takes and gives rows, in the shapes a browser store could keep
// them (the choice #27 turns on): a record per row (as an object, with and without indexes, or as
// JSON text) or a record per 500 rows of JSON text. 100,000 order-header-like rows of 21 fields,
// written in transactions of 5,000. Numbers, never assertions: `node idb-throughput.mjs`.
import { chromium } from 'playwright-core';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const context = await browser.newContext();
const page = await context.newPage();
await context.route('http://127.0.0.1:1/**', (r) => r.fulfill({ body: '<!doctype html>', contentType: 'text/html' }));
await page.goto('http://127.0.0.1:1/');
const result = await page.evaluate(async () => {
  const N = 100000, B = 5000;
  const row = (i) => ({ id: `big-${i}`, tableId: `T${i % 40}`, orderType: 'dine_in', status: i % 3 ? 'open' : 'paid', stage: 'new',
    total: (i % 997) + 0.5, paidTotal: 0, openedBy: `cashier-${i % 7}`, guests: 1 + (i % 6), note: `order number ${i}`, shiftId: 'shift-1',
    posId: 'pos-1', posNumber: 1 + (i % 4), customerName: `Customer ${i % 1000}`, discount: 0, tax: 0.14, currency: 'EGP', source: 'bench',
    version: 1, createdAt: '2026-12-06T10:00:00.000Z', updatedAt: '2026-12-06T10:00:00.000Z' });
  const open = (name, indexes) => new Promise((res, rej) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => { const s = r.result.createObjectStore('rows'); for (const [n, p] of indexes) s.createIndex(n, p); };
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
  });
  const put = (db, items) => new Promise((res, rej) => {
    const tx = db.transaction('rows', 'readwrite'); const s = tx.objectStore('rows');
    for (const [v, k] of items) s.put(v, k);
    tx.oncomplete = res; tx.onerror = () => rej(tx.error);
  });
  const out = {};
  for (const [label, indexes, shape] of [
    ['objects, no index', [], (i) => ({ t: 'order_header', k: `big-${i}`, r: row(i) })],
    ['objects, 2 indexes', [['status', ['t', 'r.status']], ['table', ['t', 'r.tableId']]], (i) => ({ t: 'order_header', k: `big-${i}`, r: row(i) })],
    ['JSON text per row', [], (i) => JSON.stringify(row(i))],
    ['JSON text per 500 rows', [], null],
  ]) {
    const db = await open(label, indexes);
    const t0 = performance.now();
    if (shape) {
      for (let s = 0; s < N; s += B) { const items = []; for (let i = s; i < s + B; i++) items.push([shape(i), `order_header\u001f${i}`]); await put(db, items); }
    } else {
      for (let s = 0; s < N; s += B) { const items = []; for (let c = s; c < s + B; c += 500) { const rows = []; for (let i = c; i < c + 500; i++) rows.push(row(i)); items.push([JSON.stringify(rows), c]); } await put(db, items); }
    }
    const write = performance.now() - t0;
    const t1 = performance.now();
    const all = await new Promise((res) => { const r = db.transaction('rows').objectStore('rows').getAll(); r.onsuccess = () => res(r.result); });
    const read = performance.now() - t1;
    let idx = null;
    if (indexes.length) {
      const t2 = performance.now();
      const got = await new Promise((res) => { const r = db.transaction('rows').objectStore('rows').index('status').getAll(IDBKeyRange.only(['order_header', 'paid']), 50); r.onsuccess = () => res(r.result); });
      idx = { ms: +(performance.now() - t2).toFixed(1), n: got.length };
      const t3 = performance.now();
      const n = await new Promise((res) => { const r = db.transaction('rows').objectStore('rows').index('status').count(IDBKeyRange.only(['order_header', 'open'])); r.onsuccess = () => res(r.result); });
      idx.countMs = +(performance.now() - t3).toFixed(1); idx.count = n;
    }
    out[label] = { writeMs: Math.round(write), rowsPerS: Math.round(N / write * 1000), getAllMs: Math.round(read), n: all.length, idx };
    db.close();
  }
  return out;
});
console.log(JSON.stringify(result, null, 1));
await browser.close();
