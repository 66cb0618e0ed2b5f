// End-to-end test of the demo apps in Debian's headless Chromium (playwright-core, no downloaded
// browser): POS → kitchen in real time, offline orders replayed exactly once, cache-first reload.
// Starts its own server (on a port it picks) over a temp copy of data/, and a TCP proxy that lets the
// test cut the POS page's network.
import { chromium } from 'playwright-core';
import { cpSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { root, startServer } from './server.mjs';

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/** A port nothing listens on (one the system just gave out and took back): a network that never
 * answers. Not for a server: it binds its own port (`startServer`). */
const unusedPort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

/** A TCP proxy the test can switch off (dropping every connection) and on again (on the port it
 * first got), or freeze: its connections stay open but carry nothing, and new ones are refused —
 * a network that died without a word, as a till's Wi-Fi does. */
function proxy(targetPort) {
  let listenPort = 0;
  let server = null;
  let frozen = false;
  const pairs = new Set();
  const on = () => new Promise((resolve) => {
    server = net.createServer((client) => {
      if (frozen) { client.destroy(); return; }
      const upstream = net.connect(targetPort, '127.0.0.1');
      const pair = [client, upstream];
      pairs.add(pair);
      for (const s of pair) { s.on('close', () => pairs.delete(pair)); s.on('error', () => {}); }
      client.pipe(upstream).pipe(client);
    });
    server.listen(listenPort, '127.0.0.1', () => {
      listenPort = server.address().port;
      resolve();
    });
  });
  const off = () => new Promise((resolve) => {
    for (const pair of pairs) for (const s of pair) s.destroy();
    frozen = false;
    server.close(() => resolve());
  });
  const freeze = () => {
    frozen = true;
    for (const [client, upstream] of pairs) {
      client.unpipe(upstream); upstream.unpipe(client); client.pause(); upstream.pause();
    }
  };
  const thaw = () => {
    for (const pair of pairs) for (const s of pair) s.destroy();
    frozen = false;
  };
  return { on, off, freeze, thaw, port: () => listenPort };
}

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mishkah-e2e-'));
  cpSync(path.join(root, 'data'), path.join(tmp, 'data'), { recursive: true });
  const server = await startServer(path.join(tmp, 'data'), { args: ['--static', path.join(root, 'static')], quiet: true });
  const base = server.base;
  const posNet = proxy(server.port);
  await posNet.on();
  const proxyPort = posNet.port();
  const deadPort = await unusedPort();

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const kitchen = await context.newPage();
    const pos = await context.newPage();
    for (const p of [kitchen, pos]) p.on('pageerror', (e) => console.error('page error:', e));
    await kitchen.goto(`${base}/kitchen.html?db=e2e-kitchen`);
    await pos.goto(`${base}/pos.html?db=e2e-pos&ws=ws://127.0.0.1:${proxyPort}/ws`);
    for (const p of [kitchen, pos]) await p.waitForSelector('#status[data-status="ready"]', { timeout: 15000 });
    console.log('both screens ready');

    // 1. An order sent from the POS appears in the kitchen within a second.
    async function order(item) {
      await pos.click('#new-order');
      await pos.click(`.item[data-item="${item}"]`);
      const id = await pos.evaluate(() => window.pos.current());
      await pos.click('#send');
      return id;
    }
    await pos.click('.cats button');
    const started = Date.now();
    const first = await order('item-01');
    await kitchen.waitForSelector(`[data-order="${first}"]`, { timeout: 1000 });
    console.log(`online order reached the kitchen in ${Date.now() - started} ms`);

    // The kitchen (hot section) subscribes to its own section's open orders: a cold order never
    // reaches it, and the device holds nothing it did not subscribe to.
    await pos.fill('#search', 'Hummus');
    const cold = await order('item-07');
    await pos.fill('#search', '');
    await pos.waitForFunction(() => window.mishkahStore.pending() === 0, null, { timeout: 10000 });
    await kitchen.waitForTimeout(500);
    assert.equal(await kitchen.locator(`[data-order="${cold}"]`).count(), 0, 'a cold order is not on the hot kitchen');
    const held = await kitchen.evaluate(() => ({
      lines: window.mishkahStore.listTable('order_line'),
      menu: window.mishkahStore.listTable('menu_items').length,
    }));
    assert.ok(held.lines.length > 0 && held.lines.every((l) => l.kitchenSectionId === 'hot'), JSON.stringify(held.lines));
    assert.equal(held.menu, 0, 'the kitchen holds only what it subscribed to');
    console.log(`the hot kitchen holds ${held.lines.length} hot lines and nothing else`);

    // A section moves its own lines only: the bar serving its tea leaves the hot kitchen's foul
    // on the hot screen; the order is served when every line is.
    const bar = await context.newPage();
    bar.on('pageerror', (e) => console.error('page error:', e));
    await bar.goto(`${base}/kitchen.html?section=bar&db=e2e-bar`);
    await bar.waitForSelector('#status[data-status="ready"]', { timeout: 15000 });
    await pos.click('#new-order');
    await pos.fill('#search', 'Foul');
    await pos.click('.item[data-item="item-02"]');
    await pos.fill('#search', 'Mint');
    await pos.click('.item[data-item="item-11"]');
    await pos.fill('#search', '');
    const mixed = await pos.evaluate(() => window.pos.current());
    await pos.click('#send');
    for (const screen of [bar, kitchen]) await screen.waitForSelector(`[data-order="${mixed}"]`, { timeout: 5000 });
    for (const next of ['preparing', 'ready', 'served']) {
      await bar.click(`[data-order="${mixed}"] button.advance[data-next="${next}"]`);
      if (next !== 'served') await bar.waitForSelector(`[data-order="${mixed}"][data-stage="${next}"]`, { timeout: 5000 });
    }
    await bar.waitForSelector(`[data-order="${mixed}"]`, { state: 'detached', timeout: 5000 });
    await kitchen.waitForTimeout(500);
    assert.equal(await kitchen.getAttribute(`[data-order="${mixed}"]`, 'data-stage'), 'queued', 'the bar moved the hot line');
    for (const next of ['preparing', 'ready', 'served']) {
      await kitchen.click(`[data-order="${mixed}"] button.advance[data-next="${next}"]`);
      if (next !== 'served') await kitchen.waitForSelector(`[data-order="${mixed}"][data-stage="${next}"]`, { timeout: 5000 });
    }
    await kitchen.waitForSelector(`[data-order="${mixed}"]`, { state: 'detached', timeout: 5000 });
    await pos.waitForFunction((id) => window.mishkahStore.listTable('order_header').find((o) => o.id === id)?.stage === 'served',
      mixed, { timeout: 5000 });
    await bar.close();
    console.log('each section moves its own lines; the order is served when every line is');

    // The screens on a phone (420 px), in Arabic: nothing overflows sideways, an order is named by
    // its number (№ first), stages are Arabic, prices carry their currency.
    const phone = await browser.newContext({ viewport: { width: 420, height: 860 } });
    for (const page of ['pos.html?db=e2e-phone-pos', 'kitchen.html?db=e2e-phone-kds']) {
      const p = await phone.newPage();
      await p.goto(`${base}/${page}`);
      await p.waitForSelector('#status[data-status="ready"]', { timeout: 15000 });
      if (page.startsWith('pos')) {
        await p.click('.cats button');
        await p.click('.item[data-item="item-01"]');
        await p.waitForFunction(() => /№/.test(document.getElementById('ticket-title').textContent));
        const seen = await p.evaluate(() => ({
          title: document.getElementById('ticket-title').textContent,
          price: document.querySelector('.item .price').textContent,
          dir: document.documentElement.dir,
        }));
        assert.equal(seen.dir, 'rtl');
        assert.match(seen.title, /^№/, seen.title);
        assert.match(seen.title, /جديد/, `the stage in Arabic: ${seen.title}`);
        assert.match(seen.price, /ج\.م\.|EGP/, `a price with its currency: ${seen.price}`);
      }
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${page} overflows a 420 px screen by ${overflow} px`);
    }
    await phone.close();
    console.log('the screens fit a 420 px phone, in Arabic, with order numbers, Arabic stages and prices in EGP');

    // 2. Offline: three orders on the POS, then reconnect: each appears in the kitchen exactly once.
    // A network that dies silently is noticed within seconds (the store's heartbeat), not
    // after a minute of a header saying "connected" while writes pile up.
    const froze = Date.now();
    posNet.freeze();
    await pos.waitForSelector('#status[data-status="offline"]', { timeout: 15000 });
    console.log(`a silent network drop noticed after ${((Date.now() - froze) / 1000).toFixed(1)} s`);
    posNet.thaw();
    await pos.waitForSelector('#status[data-status="ready"]', { timeout: 30000 });

    await posNet.off();
    await pos.waitForSelector('#status[data-status="offline"]', { timeout: 10000 });
    const offline = [];
    for (const item of ['item-02', 'item-03', 'item-04']) offline.push(await order(item));
    assert.ok(await pos.evaluate(() => window.mishkahStore.pending()) > 0, 'writes are queued while offline');
    assert.ok(Number(await pos.getAttribute('#pending', 'data-count')) > 0, 'and the screen says so');
    for (const id of offline) assert.equal(await kitchen.locator(`[data-order="${id}"]`).count(), 0, 'nothing reaches the kitchen while offline');
    await posNet.on();
    for (const id of offline) await kitchen.waitForSelector(`[data-order="${id}"]`, { timeout: 30000 });
    await pos.waitForFunction(() => window.mishkahStore.pending() === 0, null, { timeout: 30000 });
    await kitchen.waitForTimeout(500);
    for (const id of [first, ...offline]) assert.equal(await kitchen.locator(`[data-order="${id}"]`).count(), 1, `${id} shown exactly once`);
    const rows = await (await fetch(`${base}/api/branches/demo/modules/pos/tables/order_header?limit=1000`)).json();
    for (const id of offline) assert.equal(rows.rows.filter((r) => r.id === id).length, 1, `${id} stored exactly once`);
    console.log('offline orders replayed exactly once');

    // 3. The menu search finds كُشَري from كشرى (alef maqsura, no tashkeel) and from "KOSH".
    for (const typed of ['كشرى', 'KOSH']) {
      await pos.fill('#search', typed);
      await pos.waitForFunction(() => [...document.querySelectorAll('#menu .item')].map((b) => b.dataset.item).join() === 'item-01',
        null, { timeout: 5000 });
    }
    await pos.fill('#search', '');
    await pos.waitForFunction(() => document.querySelectorAll('#menu .item').length > 1, null, { timeout: 5000 });
    console.log('menu search found koshary from كشرى and KOSH');

    // Screenshots: into target/ by default, into docs/ (the README's) with UPDATE_SCREENSHOTS=1.
    const docs = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(root, 'docs') : path.join(root, 'target/screenshots');
    mkdirSync(docs, { recursive: true });
    await pos.click(`[data-order]`).catch(() => {});
    await pos.screenshot({ path: path.join(docs, 'pos.png') });
    await kitchen.screenshot({ path: path.join(docs, 'kitchen.png') });

    // 4. A reload of the kitchen shows its orders from IndexedDB before the network answers
    //    (here the network never answers: the page is pointed at a dead port).
    await kitchen.goto(`${base}/kitchen.html?db=e2e-kitchen&ws=ws://127.0.0.1:${deadPort}/ws`);
    for (const id of [first, ...offline]) await kitchen.waitForSelector(`[data-order="${id}"]`, { timeout: 5000 });
    const status = await kitchen.getAttribute('#status', 'data-status');
    assert.notEqual(status, 'ready', 'the data came from the cache, not the server');
    console.log(`kitchen reload showed ${1 + offline.length} cached orders while ${status}`);
    console.log('e2e: ok');
  } finally {
    await browser.close();
    await posNet.off().catch(() => {});
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
