// The kitchen display: orders sent from any POS appear live; start / ready / served buttons; timers.
import { openStore, label, lang } from './app.js';

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
  const orders = store.query('order_header', { where: { stage: { in: ['sent', 'preparing', 'ready'] } }, orderBy: ['sentAt', 'id'] });
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
    for (const l of store.query('order_line', { where: { orderId: o.id }, orderBy: ['createdAt', 'id'] })) {
      const li = document.createElement('li');
      li.textContent = `${l.quantity} × ${label(l.name)}`;
      list.append(li);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = BUTTON[lang][o.stage];
    button.onclick = () => quiet(store.update('order_header', { id: o.id, stage: NEXT[o.stage] }));
    card.append(h, list, button);
    return card;
  }));
}

store = await openStore('kds', render);
store.watch('order_header', {}, render);
store.watch('order_line', {}, render);
setInterval(() => document.querySelectorAll('.timer').forEach((t) => { t.textContent = elapsed(t.dataset.since); }), 1000);
render();
