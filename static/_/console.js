// The console's shell: who may use it (an admin token when the server requires one; a banner
// when it requires none), branches → modules → tables in the side bar, and the tabs of the
// chosen module. The place is kept in the address (#/branch/module/table), so a reload or a
// shared link opens the same view.
import { api, getToken, setToken } from './api.js';
import { t, currentLang, setLang } from './i18n.js';
import { tableView } from './table.js';
import { liveView } from './live.js';
import { healthView } from './health.js';
import { webhooksView } from './webhooks.js';
import { keysView, rulesView, checkView, backupsView } from './admin.js';

const $ = (id) => document.getElementById(id);
const tabs = [['table', tableView], ['live', liveView], ['health', healthView], ['webhooks', webhooksView],
  ['keys', keysView], ['rules', rulesView], ['check', checkView], ['backups', backupsView]];
/** Tabs about one module; the others are the server's. */
const perModule = new Set(['table', 'live']);
let place = { branch: null, module: null, table: null, tab: 'table' };
let stopView = null;

function readPlace() {
  const [branch, module, table, tab] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  place = { branch: branch || null, module: module || null, table: table || null, tab: tab || 'table' };
}

function go(next) {
  place = { ...place, ...next };
  const parts = [place.branch, place.module, place.table || '', place.tab].map((p) => encodeURIComponent(p ?? ''));
  history.replaceState(null, '', `#/${parts.join('/')}`);
  render();
}

/** Asked without a token: an answer means the server requires none (a banner says so); a 401
 * means it does, and the console works with the admin token given. */
async function access() {
  const open = await fetch('/api/branches').then((r) => r.ok).catch(() => false);
  $('banner').hidden = false;
  $('banner').textContent = open ? t('authOff') : t('authNeeded');
  $('signin').hidden = open;
  if (open) return true;
  if (!getToken()) return false;
  try {
    await api('/api/branches');
    $('banner').hidden = true;
    $('signin').hidden = true;
    return true;
  } catch (e) {
    $('banner').textContent = `${t('authNeeded')} ${e.message}`;
    return false;
  }
}

async function renderNav() {
  const nav = $('nav');
  nav.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = t('branches');
  nav.append(h);
  const { branches } = await api('/api/branches');
  for (const branch of branches) {
    for (const module of branch.modules) {
      const details = document.createElement('details');
      details.open = branch.id === place.branch && module === place.module;
      const summary = document.createElement('summary');
      summary.textContent = `${branch.id} › ${module}`;
      details.append(summary);
      details.addEventListener('toggle', async () => {
        if (!details.open || details.dataset.loaded) return;
        details.dataset.loaded = '1';
        await listTables(details, branch.id, module);
      });
      nav.append(details);
      if (details.open) {
        details.dataset.loaded = '1';
        await listTables(details, branch.id, module);
      }
    }
  }
}

async function listTables(details, branch, module) {
  try {
    const { tables } = await api(`/api/branches/${encodeURIComponent(branch)}/modules/${encodeURIComponent(module)}/tables`);
    for (const [name, count] of Object.entries(tables)) {
      const a = document.createElement('a');
      a.href = '#';
      a.dataset.table = name;
      a.className = branch === place.branch && module === place.module && name === place.table ? 'current' : '';
      a.innerHTML = '<span></span><small></small>';
      a.firstChild.textContent = name;
      a.lastChild.textContent = String(count);
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        document.querySelectorAll('nav a.current').forEach((x) => x.classList.remove('current'));
        a.classList.add('current');
        go({ branch, module, table: name, tab: 'table' });
      });
      details.append(a);
    }
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'message bad';
    p.textContent = e.message;
    details.append(p);
  }
}

function renderTabs() {
  const bar = $('tabs');
  bar.replaceChildren();
  for (const [name] of tabs) {
    const b = document.createElement('button');
    b.type = 'button';
    b.role = 'tab';
    b.dataset.tab = name;
    b.textContent = t(name);
    b.setAttribute('aria-selected', String(place.tab === name));
    b.addEventListener('click', () => go({ tab: name }));
    bar.append(b);
  }
}

function render() {
  stopView?.();
  stopView = null;
  renderTabs();
  const view = $('view');
  view.replaceChildren();
  if (!place.branch && perModule.has(place.tab)) {
    view.textContent = t('pick');
    return;
  }
  const make = (tabs.find(([name]) => name === place.tab) ?? tabs[0])[1];
  stopView = make(view, place, go) ?? null;
}

function words() {
  document.title = t('title');
  $('title').textContent = t('title');
  $('lang').textContent = t('language');
  $('token-label').textContent = t('token');
  $('use-token').textContent = t('signIn');
}

async function start() {
  setLang(currentLang());
  words();
  readPlace();
  $('lang').addEventListener('click', async () => {
    setLang(currentLang() === 'ar' ? 'en' : 'ar');
    words();
    if (await access()) await renderNav();
    render();
  });
  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken($('token').value.trim());
    if (await access()) {
      await renderNav();
      render();
    }
  });
  const state = await fetch('/api/state').then((r) => (r.ok ? r.json() : null)).catch(() => null);
  $('server').textContent = state?.serverId ?? '';
  if (await access()) {
    await renderNav();
    render();
  }
}

start();
