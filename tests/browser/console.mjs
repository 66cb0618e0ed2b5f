// The console (/_/) end to end in Debian's headless Chromium: browse to a table, filter (a parse
// error shown where it points), sort, page, edit a row and see its version change, provoke a
// conflict and see both versions, read its history and restore a version, watch a write made
// elsewhere appear in the live tail (paused and filtered), see the health charts move, switch to
// Arabic (right to left); with --auth required, nothing without an admin token. Screenshots go
// to $SCREENSHOTS when set (docs/ holds the ones the README shows).
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { bin, root, startServer } from './server.mjs';
import { cpSync, mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.SCREENSHOTS ? path.resolve(process.env.SCREENSHOTS) : null;
const SECRET = 'console-test-secret-of-enough-length-0123456789';

/** A server on `data` with the repo's static files. */
const serve = (data, args = []) => startServer(data, { args: ['--static', path.join(root, 'static'), ...args] });

async function rest(base, method, p, body) {
  const res = await fetch(`${base}${p}`, {
    method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${p}: ${JSON.stringify(json)}`);
  return json;
}

const snap = async (page, name) => {
  if (!shots) return;
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(shots, `console-${name}.png`) });
};

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-console-'));
  if (shots) mkdirSync(shots, { recursive: true });
  const servers = [];
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    cpSync(path.join(root, 'data'), path.join(tmp, 'data'), { recursive: true });
    const server = await serve(path.join(tmp, 'data'));
    servers.push(server);
    const { base } = server;
    const mod = '/api/branches/demo/modules/pos';
    // 60 dining tables: more than a page of 50.
    const extra = Array.from({ length: 48 }, (_, i) => ({ table: 'dining_tables',
      record: { id: `X${String(i).padStart(2, '0')}`, name: { ar: `طاولة ${i}`, en: `Extra ${i}` }, seats: 2 + (i % 9), zone: 'hall' } }));
    await rest(base, 'POST', `${mod}/events/batch`, { events: extra });
    const total = (await rest(base, 'GET', `${mod}/tables/dining_tables/count`)).count;
    assert.equal(total, 60);

    const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') console.error('page:', m.text()); });
    await page.goto(`${base}/_/`);

    // Auth off: said so; no token asked for.
    await page.locator('#banner', { hasText: 'Authentication is off' }).waitFor();
    assert.equal(await page.locator('#signin').isVisible(), false);

    // Browse: branch › module → table, with row counts.
    await page.locator('nav summary', { hasText: 'demo › pos' }).click();
    const link = page.locator('nav a[data-table="dining_tables"]');
    await link.waitFor();
    assert.equal(await link.locator('small').textContent(), '60');
    await link.click();
    await page.locator('.count', { hasText: '60 rows match' }).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 50, 'a page of 50');

    // Keyset paging: the next page holds the other 10, none seen before.
    const firstPage = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.key));
    await page.locator('[data-act="next"]').click();
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 10);
    const secondPage = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.key));
    assert.equal(new Set([...firstPage, ...secondPage]).size, 60);
    await page.locator('[data-act="first"]').click();
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 50);

    // A filter that does not parse: the error points at its place; one that does filters.
    await page.locator('input.filter').fill('seats >> 2');
    await page.locator('input.filter').press('Enter');
    const error = page.locator('.filter-error');
    await error.waitFor();
    assert.match(await error.textContent(), /seats >> 2\n {7}\^ invalid filter at position 7/);
    await page.locator('input.filter').fill('seats > 8 && zone = "hall"');
    await page.locator('input.filter').press('Enter');
    const expected = (await rest(base, 'GET', `${mod}/tables/dining_tables/count?filter=${encodeURIComponent('seats > 8 && zone = "hall"')}`)).count;
    assert.ok(expected > 0 && expected < 60);
    await page.locator('.count', { hasText: `${expected} rows match` }).waitFor();
    assert.equal(await error.isVisible(), false);
    await page.locator('input.filter').fill('');
    await page.locator('input.filter').press('Enter');
    await page.locator('.count', { hasText: '60 rows match' }).waitFor();

    // Sort by a column, both ways.
    const seatsColumn = async () => {
      const i = await page.locator('thead th').evaluateAll((ths) => ths.findIndex((th) => th.dataset.field === 'seats'));
      return page.locator('tbody tr').evaluateAll((rows, i) => rows.map((r) => Number(r.children[i].textContent)), i);
    };
    await page.locator('th[data-field="seats"]').click();
    await page.locator('th[data-field="seats"]', { hasText: '▲' }).waitFor();
    await page.waitForFunction(() => document.querySelector('tbody tr')?.dataset.key !== 'T01');
    let seats = await seatsColumn();
    assert.deepEqual(seats, [...seats].sort((a, b) => a - b), 'ascending');
    await page.locator('th[data-field="seats"]').click();
    await page.locator('th[data-field="seats"]', { hasText: '▼' }).waitFor();
    await page.waitForFunction(() => Number(document.querySelector('tbody tr td:nth-child(3)')?.textContent) === 10);
    seats = await seatsColumn();
    assert.deepEqual(seats, [...seats].sort((a, b) => b - a), 'descending');

    // The column chooser hides a column.
    await page.locator('[data-act="columns"]').click();
    await page.locator('.columns input[data-field="createdAt"]').uncheck();
    await page.waitForFunction(() => !document.querySelector('th[data-field="createdAt"]'));
    await page.locator('th[data-field="seats"]').click();
    await page.waitForFunction(() => !document.querySelector('th[data-field="seats"]').textContent.includes('▼'));
    await page.locator('[data-act="columns"]').click();

    // Edit a row: the version read is sent and the new one shown.
    await page.locator('tbody tr[data-key="T01"]').click();
    const panel = page.locator('.row-panel .panel');
    await panel.locator('h3', { hasText: 'T01 · v1' }).waitFor();
    await panel.locator('textarea[name="seats"]').fill('7');
    await panel.locator('[data-act="save"]').click();
    await panel.locator('.message', { hasText: 'Saved: version 2' }).waitFor();
    await panel.locator('h3', { hasText: 'T01 · v2' }).waitFor();
    assert.equal((await rest(base, 'GET', `${mod}/tables/dining_tables/T01`)).record.seats, 7);
    await snap(page, 'table');

    // A write elsewhere meanwhile: saving over it is a conflict, both versions side by side.
    await rest(base, 'PATCH', `${mod}/tables/dining_tables`, { record: { id: 'T01', seats: 8 }, expectedVersion: 2 });
    await panel.locator('textarea[name="seats"]').fill('9');
    await panel.locator('[data-act="save"]').click();
    const conflict = panel.locator('.conflict');
    await conflict.locator('.side-by-side').waitFor();
    assert.match(await conflict.locator('p').textContent(), /v2 → v3/);
    assert.match(await conflict.locator('.mine').textContent(), /"seats": 9/);
    assert.match(await conflict.locator('.theirs').textContent(), /"seats": 8[\s\S]*"version": 3/);
    await conflict.scrollIntoViewIfNeeded();
    await snap(page, 'conflict');
    await conflict.locator('[data-act="keep-mine"]').click();
    await panel.locator('.message', { hasText: 'Saved: version 4' }).waitFor();
    let stored = (await rest(base, 'GET', `${mod}/tables/dining_tables/T01`)).record;
    assert.deepEqual([stored.seats, stored.version], [9, 4]);

    // History: every version with what changed; restoring the first writes it back.
    await panel.locator('[data-act="history"]').click();
    const history = panel.locator('.history li');
    await history.nth(3).waitFor();
    assert.equal(await history.count(), 4);
    assert.match(await history.first().textContent(), /changed · v4 · rest/);
    assert.match(await history.first().locator('.diff-del').textContent(), /- seats: 8/);
    assert.match(await history.first().locator('.diff-add').textContent(), /\+ seats: 9/);
    assert.match(await history.last().textContent(), /created · v1/);
    await history.first().scrollIntoViewIfNeeded();
    await snap(page, 'history');
    await panel.locator('[data-act="restore"][data-version="1"]').click();
    await panel.locator('h3', { hasText: 'T01 · v5' }).waitFor();
    stored = (await rest(base, 'GET', `${mod}/tables/dining_tables/T01`)).record;
    assert.deepEqual([stored.seats, stored.version], [4, 5]);

    // Insert, then delete with confirmation.
    await panel.locator('[data-act="close"]').click();
    await page.locator('[data-act="insert"]').click();
    await panel.locator('h3', { hasText: 'New row' }).waitFor();
    await panel.locator('textarea[name="id"]').fill('"T-new"');
    await panel.locator('textarea[name="name"]').fill('{"ar": "جديدة", "en": "New"}');
    await panel.locator('textarea[name="seats"]').fill('3');
    await panel.locator('[data-act="save"]').click();
    await panel.locator('h3', { hasText: 'T-new · v1' }).waitFor();
    page.once('dialog', (d) => d.accept());
    await panel.locator('[data-act="delete"]').click();
    await page.locator('.count', { hasText: '60 rows match' }).waitFor();
    const gone = await fetch(`${base}${mod}/tables/dining_tables/T-new`);
    assert.equal(gone.status, 404);

    // The live tail: a write made elsewhere appears; paused, it waits; filtered, it hides.
    await page.locator('#tabs [data-tab="live"]').click();
    await page.locator('.status', { hasText: 'ready' }).waitFor();
    await rest(base, 'POST', `${mod}/tables/dining_tables`, { record: { id: 'T-live', name: { en: 'Live' }, seats: 2 } });
    await page.locator('.tail li', { hasText: 'dining_tables  insert  T-live' }).waitFor();
    await page.locator('[data-act="pause"]').click();
    await rest(base, 'DELETE', `${mod}/tables/dining_tables/T-live`);
    await page.waitForTimeout(500);
    assert.equal(await page.locator('.tail li', { hasText: 'delete  T-live' }).count(), 0, 'paused');
    await page.locator('[data-act="pause"]').click();
    await page.locator('.tail li', { hasText: 'dining_tables  delete  T-live' }).waitFor();
    await page.locator('select[name="action"]').selectOption('delete');
    assert.equal(await page.locator('.tail li', { hasText: 'insert  T-live' }).isVisible(), false);
    assert.equal(await page.locator('.tail li', { hasText: 'delete  T-live' }).isVisible(), true);
    await page.locator('select[name="action"]').selectOption('');
    await snap(page, 'live');

    // Health: writes made now move the charts.
    await page.locator('#tabs [data-tab="health"]').click();
    await page.locator('[data-chart="writesPerSec"]').waitFor();
    const writer = (async () => {
      for (let i = 0; i < 30; i++) {
        await rest(base, 'PATCH', `${mod}/tables/dining_tables`, { record: { id: 'T02', seats: 2 + (i % 5) } });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="writesPerSec"]').dataset.last) > 0);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="commitMs"]').dataset.last) > 0);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="fanoutMs"]').dataset.last) > 0);
    await writer;
    const line = await page.locator('[data-chart="writesPerSec"] polyline').getAttribute('points');
    assert.ok(line.split(' ').length > 2, line);
    await snap(page, 'health');

    // Check: an edit of a schema on disk, measured against the stored rows before a restart.
    const schemaFile = path.join(tmp, 'data', 'schemas', 'pos_schema.json');
    const schema = JSON.parse(readFileSync(schemaFile, 'utf8'));
    schema.schema.tables.find((t) => t.name === 'dining_tables').fields.push({ name: 'smoking', columnName: 'smoking',
      type: 'boolean', nullable: false, primaryKey: false, unique: false, index: false, defaultValue: false });
    writeFileSync(schemaFile, JSON.stringify(schema));
    await page.locator('#tabs [data-tab="check"]').click();
    await page.locator('.problems li[data-severity="note"]',
      { hasText: 'tables.dining_tables.fields.smoking: branch `demo`: new field; 60 stored rows get its default false' }).waitFor();
    await snap(page, 'check');

    // Arabic, right to left.
    await page.locator('#tabs [data-tab="table"]').click();
    await page.locator('#lang').click();
    assert.equal(await page.evaluate(() => document.documentElement.dir), 'rtl');
    await page.locator('#title', { hasText: 'لوحة مشكاة' }).waitFor();
    await page.locator('nav h2', { hasText: 'الفروع' }).waitFor();
    await page.locator('#tabs [data-tab="live"]', { hasText: 'الأحداث الحية' }).waitFor();
    await page.locator('.count', { hasText: 'صفوف مطابقة' }).waitFor();
    await snap(page, 'arabic');
    await page.locator('#lang').click();
    assert.deepEqual(errors, [], 'no page errors');

    // A tablet, upright: the page never scrolls sideways (the grid scrolls within its frame), the
    // row panel fits the screen.
    const tablet = await (await browser.newContext({ viewport: { width: 820, height: 1180 }, hasTouch: true })).newPage();
    await tablet.goto(`${base}/_/#/demo/pos/dining_tables/table`);
    await tablet.locator('tbody tr[data-key="T01"]').tap();
    await tablet.locator('.row-panel .panel h3', { hasText: 'T01' }).waitFor();
    const fits = await tablet.evaluate(() => ({
      page: document.documentElement.scrollWidth <= window.innerWidth,
      panel: document.querySelector('.row-panel').getBoundingClientRect().width <= window.innerWidth,
    }));
    assert.deepEqual(fits, { page: true, panel: true });
    await tablet.close();

    // --auth required: nothing without a token; an admin's token opens it.
    cpSync(path.join(root, 'data'), path.join(tmp, 'data2'), { recursive: true });
    const secured = await serve(path.join(tmp, 'data2'), ['--auth', 'required', '--jwt-secret', SECRET,
      '--backup-to', path.join(tmp, 'backups'), '--backup-ship-ms', '200']);
    servers.push(secured);
    const guarded = await (await browser.newContext()).newPage();
    await guarded.goto(`${secured.base}/_/`);
    await guarded.locator('#signin').waitFor();
    await guarded.locator('#banner', { hasText: 'requires an admin token' }).waitFor();
    assert.equal(await guarded.locator('nav summary').count(), 0);
    const token = execFileSync(bin, ['token', '--jwt-secret', SECRET, '--sub', 'ops', '--role', 'admin']).toString().trim();
    await guarded.locator('#token').fill(token);
    await guarded.locator('#use-token').click();
    await guarded.locator('nav summary', { hasText: 'demo › pos' }).waitFor();
    assert.equal(await guarded.locator('#signin').isVisible(), false);

    // Keys: created (shown once, and it works), revoked (and it stops working).
    await guarded.locator('#tabs [data-tab="keys"]').click();
    await guarded.locator('input[name="name"]').fill('till-1');
    await guarded.locator('input[name="role"]').fill('cashier');
    await guarded.locator('input[name="branches"]').fill('demo');
    await guarded.locator('form.toolbar button[type="submit"]').click();
    const newKey = await guarded.locator('code.new-key').textContent();
    assert.match(newKey, /^mk_/);
    await guarded.locator('tr[data-key="till-1"]', { hasText: 'active' }).waitFor();
    const asKey = () => fetch(`${secured.base}/api/branches/demo/modules/pos/tables/dining_tables?limit=1`,
      { headers: { authorization: `Bearer ${newKey}` } }).then((r) => r.status);
    assert.equal(await asKey(), 200);
    await snap(guarded, 'keys');
    guarded.once('dialog', (d) => d.accept());
    await guarded.locator('button[data-key="till-1"]').click();
    await guarded.locator('tr[data-key="till-1"]', { hasText: 'revoked' }).waitFor();
    assert.equal(await asKey(), 401);

    // Rules: the file as on disk, its problems as `mishkah check` words them.
    const rulesFile = path.join(tmp, 'data2', 'security', 'rules.json');
    writeFileSync(rulesFile, JSON.stringify({ modules: { pos: { tables: { order_header: { create: 'seats >>' } } } } }));
    await guarded.locator('#tabs [data-tab="rules"]').click();
    await guarded.locator('.problems li', { hasText: 'security/rules.json: modules.pos.tables.order_header.create: invalid filter' }).waitFor();
    assert.match(await guarded.locator('.rules-text').textContent(), /seats >>/);

    // Backups: the snapshot taken at start listed; one more taken on request.
    await guarded.locator('#tabs [data-tab="backups"]').click();
    await guarded.locator('table.backups tbody tr').first().waitFor();
    const before = await guarded.locator('table.backups tbody tr').count();
    await guarded.locator('#view button.primary').click();
    await guarded.locator('.message', { hasText: 'Requested' }).waitFor();
    await guarded.waitForFunction((n) => document.querySelectorAll('table.backups tbody tr').length > n, before, { timeout: 20000 });
    await snap(guarded, 'backups');
    console.log('console: browse, filter, sort, page, edit, conflict, history, restore, insert, delete, live tail, health, check, Arabic, auth, keys, rules, backups: ok');
  } finally {
    await browser.close();
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
