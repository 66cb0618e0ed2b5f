// Shared by the demo pages: loads the wasm store, wires the header (language, status, pending
// writes) and shows conflicts and errors instead of swallowing them.
import init, { createStore } from './pkg/index.js';

const TEXT = {
  ar: { ready: 'متصل', connecting: 'جارٍ الاتصال', open: 'جارٍ المزامنة', offline: 'غير متصل', closed: 'مغلق', idle: 'خامل',
        pending: (n) => `${n} بانتظار المزامنة`, conflict: 'تعارض: عدّل شخص آخر هذا السجل؛ عُرضت النسخة الأحدث.', lang: 'English',
        'token-expired': 'انتهت صلاحية الجلسة: سجّل الدخول من جديد.' },
  en: { ready: 'Connected', connecting: 'Connecting', open: 'Syncing', offline: 'Offline', closed: 'Closed', idle: 'Idle',
        pending: (n) => `${n} pending`, conflict: 'Conflict: someone else changed this record; showing the latest.', lang: 'العربية',
        'token-expired': 'Your session expired: sign in again.' },
};

export let lang = localStorage.getItem('mishkah.lang') || 'ar';
export const t = (key, ...args) => { const v = TEXT[lang][key]; return typeof v === 'function' ? v(...args) : v; };
export const label = (value) => (value && typeof value === 'object' ? value[lang] || value.en || value.ar : value ?? '');

export function applyLang() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === 'ar' ? 'rtl' : 'ltr';
  document.querySelectorAll('[data-ar]').forEach((el) => { el.textContent = el.dataset[lang]; });
  const btn = document.getElementById('lang');
  if (btn) btn.textContent = t('lang');
}

export function toast(message) {
  const el = document.createElement('div');
  el.className = 'toast';
  el.setAttribute('role', 'alert');
  el.textContent = message;
  document.body.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** `options.sync: 'subscriptions'` holds only what the page subscribes to; `options.db` names its cache. */
export async function openStore(role, onLang, options = {}) {
  await init();
  const params = new URLSearchParams(location.search);
  const wsUrl = params.get('ws') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const store = createStore({
    branchId: params.get('branch') || 'demo', moduleId: 'pos', role, wsUrl,
    httpUrl: location.origin, autoReconnect: true, useIndexedDB: true,
    dbName: params.get('db') || options.db || `mishkah-demo-${role}`,
    sync: options.sync,
    // A server with `--auth required`: `pos.html?token=<jwt>` (see README, "Going to production").
    token: params.get('token') || undefined,
  });
  store.on('token-expired', () => toast(t('token-expired')));
  const status = document.getElementById('status');
  const pending = document.getElementById('pending');
  const showStatus = () => {
    const s = store.status();
    status.dataset.status = s;
    status.textContent = t(s);
    const n = store.pending();
    pending.textContent = n ? t('pending', n) : '';
    pending.dataset.count = n;
  };
  store.on('status', showStatus);
  for (const e of ['ack', 'event', 'snapshot']) store.on(e, showStatus);
  store.on('conflict', (c) => { toast(t('conflict')); console.warn('conflict', c); showStatus(); });
  store.on('error', (e) => { toast(`${e.code}: ${e.message}`); showStatus(); });
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'ar' ? 'en' : 'ar';
    localStorage.setItem('mishkah.lang', lang);
    applyLang();
    showStatus();
    onLang?.();
  });
  applyLang();
  showStatus();
  window.mishkahStore = store; // for the browser tests and the curious
  await store.connect();
  showStatus();
  // Local writes change the pending count too: refresh on every change of the order tables.
  for (const table of ['order_header', 'order_line', 'order_payment']) store.watch(table, {}, showStatus);
  setInterval(showStatus, 1000);
  return store;
}

export const newId = (prefix) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
/** A price with its currency, in the screen's language (٤٥٫٠٠ ج.م. / EGP 45.00). */
export const money = (n) => new Intl.NumberFormat(lang === 'ar' ? 'ar-EG' : 'en-EG', { style: 'currency', currency: 'EGP' })
  .format(Math.round(Number(n || 0) * 100) / 100);

const STAGE = {
  ar: { new: 'جديد', sent: 'أُرسل للمطبخ', preparing: 'قيد التحضير', ready: 'جاهز', served: 'قُدّم', queued: 'بالانتظار' },
  en: { new: 'New', sent: 'Sent', preparing: 'Preparing', ready: 'Ready', served: 'Served', queued: 'Queued' },
};
/** An order's or a line's stage, in the screen's language. */
export const stageName = (stage) => STAGE[lang][stage] ?? stage;

/** How people name an order: its number and its table, never its random id. The number is kept
 * apart from the text around it (a Unicode isolate), so `№` stays before it in Arabic too. */
export function orderName(order, tableName) {
  const number = order.invoiceSequence ?? order.id.replace(/[^0-9a-z]/gi, '').slice(-4).toUpperCase();
  const parts = [`№\u00a0\u2068${number}\u2069`];
  if (tableName) parts.push(tableName);
  return parts.join(' · ');
}
