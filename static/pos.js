// The POS screen: open an order, add menu items, change quantities, send to kitchen, take payment.
// Every write goes through the wasm store: visible at once, queued offline, synced when online.
import { openStore, label, lang, newId, money, toast, stageName, orderName } from './app.js';

const $ = (id) => document.getElementById(id);
let store;
let category = null;
let current = localStorage.getItem('mishkah.pos.order');
const quiet = (p) => p.catch(() => {}); // refusals surface through the store's conflict/error events

function openOrders() {
  return store.query('order_header', { where: { status: 'open' }, orderBy: ['-createdAt'] });
}

function linesOf(orderId) {
  return store.query('order_line', { where: { orderId }, orderBy: ['createdAt', 'id'] });
}

function renderMenu() {
  const cats = store.query('menu_categories', { orderBy: ['sortOrder'] });
  if (!category && cats.length) category = cats[0].id;
  $('cats').replaceChildren(...cats.map((c) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label(c.name);
    b.setAttribute('aria-pressed', String(c.id === category));
    b.onclick = () => { category = c.id; renderMenu(); };
    return b;
  }));
  // Typing searches the whole menu, in Arabic or English, however it is spelled (كشرى finds
  // كُشَري), offline too: the store searches with the same folding as the server.
  const q = $('search').value.trim();
  const items = q
    ? store.search('menu_items', q).filter((i) => i.isActive !== false)
    : store.query('menu_items', { where: { categoryId: category, isActive: true }, orderBy: ['id'] });
  $('menu').replaceChildren(...items.map((item) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'item';
    b.dataset.item = item.id;
    b.innerHTML = `<span></span><span class="price"></span>`;
    b.firstChild.textContent = label(item.name);
    b.lastChild.textContent = money(item.price);
    b.onclick = () => addItem(item);
    return b;
  }));
}

function renderTicket() {
  const orders = openOrders();
  if (current && !store.getRecord('order_header', current)) current = null;
  const order = current && store.getRecord('order_header', current);
  const table = order?.tableId && store.getRecord('dining_tables', order.tableId);
  $('ticket-title').textContent = order
    ? `${orderName(order, table && label(table.name))} · ${stageName(order.stage)}`
    : (lang === 'ar' ? 'لا يوجد طلب مفتوح' : 'No open order');
  const lines = order ? linesOf(order.id) : [];
  $('lines').replaceChildren(...lines.map((l) => {
    const row = document.createElement('div');
    row.className = 'line';
    row.dataset.line = l.id;
    const name = document.createElement('span');
    name.textContent = label(l.name);
    const minus = document.createElement('button');
    minus.textContent = '−';
    minus.onclick = () => changeQty(l, -1);
    const qty = document.createElement('span');
    qty.textContent = l.quantity;
    const plus = document.createElement('button');
    plus.textContent = '+';
    plus.onclick = () => changeQty(l, 1);
    row.append(name, minus, qty, plus);
    return row;
  }));
  $('total').textContent = money(lines.reduce((s, l) => s + Number(l.total || 0), 0));
  $('orders').replaceChildren(...orders.map((o) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = orderName(o);
    b.setAttribute('aria-pressed', String(o.id === current));
    b.onclick = () => { current = o.id; localStorage.setItem('mishkah.pos.order', current); renderTicket(); };
    return b;
  }));
}

async function newOrder() {
  current = newId('ord');
  localStorage.setItem('mishkah.pos.order', current);
  quiet(store.insert('order_header', { id: current, status: 'open', stage: 'new', orderType: 'dine_in', total: 0 }));
  renderTicket();
  return current;
}

async function recomputeTotal(orderId) {
  const total = linesOf(orderId).reduce((s, l) => s + Number(l.total || 0), 0);
  quiet(store.update('order_header', { id: orderId, total }));
}

function addItem(item) {
  if (!current) newOrder();
  const existing = linesOf(current).find((l) => l.itemId === item.id && l.status === 'draft');
  if (existing) return changeQty(existing, 1);
  quiet(store.insert('order_line', {
    id: newId('line'), orderId: current, itemId: item.id, name: item.name, quantity: 1,
    unitPrice: item.price, total: item.price, kitchenSectionId: item.kitchenSectionId, status: 'draft',
  }));
  recomputeTotal(current);
}

function changeQty(line, delta) {
  const quantity = Number(line.quantity) + delta;
  if (quantity <= 0) quiet(store.remove('order_line', { id: line.id }));
  else quiet(store.update('order_line', { id: line.id, quantity, total: quantity * Number(line.unitPrice) }));
  recomputeTotal(line.orderId);
}

function send() {
  const order = current && store.getRecord('order_header', current);
  if (!order) return;
  if (!linesOf(order.id).length) { toast(lang === 'ar' ? 'الطلب فارغ' : 'The order is empty'); return; }
  quiet(store.update('order_header', { id: order.id, stage: 'sent', sentAt: new Date().toISOString() }));
  for (const l of linesOf(order.id).filter((l) => l.status === 'draft')) quiet(store.update('order_line', { id: l.id, status: 'queued' }));
}

function pay() {
  const order = current && store.getRecord('order_header', current);
  if (!order) return;
  const amount = linesOf(order.id).reduce((s, l) => s + Number(l.total || 0), 0);
  quiet(store.insert('order_payment', { id: newId('pay'), orderId: order.id, methodId: 'cash', amount }));
  quiet(store.update('order_header', { id: order.id, status: 'paid', paidTotal: amount }));
  current = null;
  localStorage.removeItem('mishkah.pos.order');
  renderTicket();
}

const render = () => { renderMenu(); renderTicket(); };
/** An order sent to the kitchens takes the stage of its least advanced line: ready when every
 * section has it ready, served when every line is served. */
const STAGE_OF_LINE = { queued: 'sent', preparing: 'preparing', ready: 'ready', served: 'served' };
const STAGES = ['sent', 'preparing', 'ready', 'served'];
function followLines() {
  for (const order of store.query('order_header', 'stage in ["sent", "preparing", "ready"]')) {
    const lines = linesOf(order.id).filter((l) => l.status !== 'draft');
    if (!lines.length) continue;
    const stage = STAGES[Math.min(...lines.map((l) => STAGES.indexOf(STAGE_OF_LINE[l.status] ?? 'sent')))];
    if (STAGES.indexOf(stage) > STAGES.indexOf(order.stage)) quiet(store.update('order_header', { id: order.id, stage }));
  }
}

store = await openStore('pos', render);
for (const table of ['menu_items', 'menu_categories']) store.watch(table, {}, renderMenu);
for (const table of ['order_header', 'order_line']) store.watch(table, {}, renderTicket);
store.watch('order_line', {}, followLines);
$('search').addEventListener('input', renderMenu);
$('new-order').onclick = newOrder;
$('send').onclick = send;
$('pay').onclick = pay;
window.pos = { newOrder, addItem: (id) => addItem(store.getRecord('menu_items', id)), send, pay, current: () => current };
render();
