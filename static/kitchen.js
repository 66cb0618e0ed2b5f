// The kitchen display of one section (`?section=hot|cold|bar`, default hot): the orders sent from
// any POS with lines for this section appear live; start / ready / served buttons; timers.
// It holds only what it shows: the store syncs by subscriptions (live queries), so this device
// receives and keeps its section's open lines and the open order headers, nothing else.
import { openStore, label, lang, orderName } from './app.js';

const section = new URLSearchParams(location.search).get('section') || 'hot';
const OPEN_LINES = `kitchenSectionId = ${JSON.stringify(section)} && status in ["queued", "preparing", "ready"]`;
const OPEN_ORDERS = 'stage in ["sent", "preparing", "ready"]';

let store;
// A section moves its own lines, never another section's: a bar's "Ready" must not take an order
// off the hot kitchen's screen while its hot line is still cooking. The order's stage follows
// its lines (the POS, which sees them all, moves it).
const LINE_ORDER = ['queued', 'preparing', 'ready', 'served'];
const NEXT = { queued: 'preparing', preparing: 'ready', ready: 'served' };
const BUTTON = {
  ar: { queued: 'ابدأ', preparing: 'جاهز', ready: 'تم التقديم' },
  en: { queued: 'Start', preparing: 'Ready', ready: 'Served' },
};
/** The least advanced status among `lines`: where this section is with the order. */
const sectionStatus = (lines) => LINE_ORDER[Math.min(...lines.map((l) => LINE_ORDER.indexOf(l.status)))];
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
    const own = lines.filter((l) => l.orderId === o.id);
    const status = sectionStatus(own);
    card.dataset.stage = status;
    const h = document.createElement('h3');
    const title = document.createElement('span');
    title.className = 'order-name';
    title.textContent = orderName(o);
    const timer = document.createElement('span');
    timer.className = 'timer';
    timer.dataset.since = o.sentAt || o.createdAt;
    timer.textContent = elapsed(timer.dataset.since);
    h.append(title, timer);
    const list = document.createElement('ul');
    for (const l of own) {
      const li = document.createElement('li');
      li.textContent = `${l.quantity} × ${label(l.name)}`;
      list.append(li);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'advance';
    button.dataset.next = NEXT[status];
    button.textContent = BUTTON[lang][status];
    button.onclick = () => {
      const next = NEXT[status];
      // Served lines leave the section's live query, and the device.
      for (const l of own.filter((l) => l.status === status)) quiet(store.update('order_line', { id: l.id, status: next }));
      if (next === 'preparing' && o.stage === 'sent') quiet(store.update('order_header', { id: o.id, stage: 'preparing' }));
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
