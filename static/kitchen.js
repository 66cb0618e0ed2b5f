// The kitchen display of one section (`?section=hot|cold|bar`, default hot): the orders sent from
// any POS with lines for this section appear live; start / ready / served buttons; timers.
// It holds only what it shows: the store syncs by subscriptions (live queries), so this device
// receives and keeps its section's open lines and the open order headers, nothing else.
import { openStore, label, lang } from './app.js';

const section = new URLSearchParams(location.search).get('section') || 'hot';
const OPEN_LINES = `kitchenSectionId = ${JSON.stringify(section)} && status in ["queued", "preparing", "ready"]`;
const OPEN_ORDERS = 'stage in ["sent", "preparing", "ready"]';

let store;
const NEXT = { sent: 'preparing', preparing: 'ready', ready: 'served' };
const BUTTON = {
  ar: { sent: 'ابدأ', preparing: 'جاهز', ready: 'تم التقديم' },
  en: { sent: 'Start', preparing: 'Ready', ready: 'Served' },
};
const quiet = (p) => p.catch(() => {});

function elapsed(since) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function render() {
  const title = store.query('kitchen_sections', `id = ${JSON.stringify(section)}`)[0];
  document.getElementById('section').textContent = title ? label(title.name) : section;
  const lines = store.query('order_line', { where: OPEN_LINES, orderBy: ['createdAt', 'id'] });
  const mine = new Set(lines.map((l) => l.orderId));
  const orders = store.query('order_header', { where: OPEN_ORDERS, orderBy: ['sentAt', 'id'] }).filter((o) => mine.has(o.id));
  const root = document.getElementById('tickets');
  if (!orders.length) {
    const empty = document.createElement('p');
    empty.className = 'empty';
    empty.textContent = lang === 'ar' ? 'لا توجد طلبات' : 'No orders';
    root.replaceChildren(empty);
    return;
  }
  root.replaceChildren(...orders.map((o) => {
    const card = document.createElement('article');
    card.className = 'ticket-card';
    card.dataset.order = o.id;
    card.dataset.stage = o.stage;
    const h = document.createElement('h3');
    const title = document.createElement('span');
    title.textContent = `#${o.id.slice(-6)}`;
    const timer = document.createElement('span');
    timer.className = 'timer';
    timer.dataset.since = o.sentAt || o.createdAt;
    timer.textContent = elapsed(timer.dataset.since);
    h.append(title, timer);
    const list = document.createElement('ul');
    for (const l of lines.filter((l) => l.orderId === o.id)) {
      const li = document.createElement('li');
      li.textContent = `${l.quantity} × ${label(l.name)}`;
      list.append(li);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = BUTTON[lang][o.stage];
    button.onclick = () => {
      const next = NEXT[o.stage];
      quiet(store.update('order_header', { id: o.id, stage: next }));
      // This section's lines follow; served ones leave the section's live query, and the device.
      for (const l of lines.filter((l) => l.orderId === o.id)) quiet(store.update('order_line', { id: l.id, status: next }));
    };
    card.append(h, list, button);
    return card;
  }));
}

store = await openStore('kds', render, { sync: 'subscriptions', db: `mishkah-demo-kds-${section}` });
store.subscribe('order_line', OPEN_LINES);
store.subscribe('order_header', OPEN_ORDERS);
store.subscribe('kitchen_sections', `id = ${JSON.stringify(section)}`);
for (const table of ['order_header', 'order_line', 'kitchen_sections']) store.watch(table, {}, render);
setInterval(() => document.querySelectorAll('.timer').forEach((t) => { t.textContent = elapsed(t.dataset.since); }), 1000);
render();
