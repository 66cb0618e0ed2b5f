// The branch's changes as they commit, through @mishkah/client (the WebSocket an app uses), newest
// first: paused to read, filtered by table and action.
import init, { createStore } from '../pkg/index.js';
import { getToken } from './api.js';
import { t } from './i18n.js';

const KEEP = 500;
let loaded = null;

/** One tail line's parts, from a `server:event` frame or a compact change. */
function describe(e) {
  const action = String(e.action ?? e.op ?? e.kind ?? e.change?.kind ?? '').replace(/^module:/, '');
  const key = e.recordRef?.key ?? e.meta?.recordKey ?? e.key ?? e.change?.key ?? '';
  return { sequence: e.sequence ?? e.seq ?? '', table: e.table ?? e.change?.table ?? '', action, key };
}

export function liveView(view, place) {
  view.innerHTML = `<div class="toolbar"><button type="button" data-act="pause"></button>
    <select name="table"></select><select name="action"></select><span class="status"></span></div><ul class="tail"></ul>`;
  const q = (sel) => view.querySelector(sel);
  const state = { paused: false, held: [] };
  const tableSel = q('[name="table"]');
  const actionSel = q('[name="action"]');
  tableSel.append(new Option(t('allTables'), ''));
  actionSel.append(new Option(t('allActions'), ''));
  for (const a of ['insert', 'update', 'merge', 'save', 'delete']) actionSel.append(new Option(a, a));
  const pause = q('[data-act="pause"]');
  pause.textContent = t('pause');
  pause.addEventListener('click', () => {
    state.paused = !state.paused;
    pause.textContent = state.paused ? t('resume') : t('pause');
    if (!state.paused) state.held.splice(0).forEach(show);
  });

  function show(line) {
    const list = q('.tail');
    if (!list) return;
    if (![...tableSel.options].some((o) => o.value === line.table)) tableSel.append(new Option(line.table, line.table));
    const li = document.createElement('li');
    li.dataset.table = line.table;
    li.dataset.action = line.action;
    li.textContent = `${new Date().toLocaleTimeString()}  #${line.sequence}  ${line.table}  ${line.action}  ${line.key}`;
    li.hidden = (tableSel.value && tableSel.value !== line.table) || (actionSel.value && actionSel.value !== line.action);
    list.prepend(li);
    while (list.children.length > KEEP) list.lastChild.remove();
  }
  const refilter = () => {
    for (const li of view.querySelectorAll('.tail li')) {
      li.hidden = (tableSel.value && tableSel.value !== li.dataset.table) || (actionSel.value && actionSel.value !== li.dataset.action);
    }
  };
  tableSel.addEventListener('change', refilter);
  actionSel.addEventListener('change', refilter);

  let store = null;
  (async () => {
    loaded ??= init();
    await loaded;
    store = createStore({
      branchId: place.branch, moduleId: place.module, useIndexedDB: false,
      ...(getToken() ? { token: getToken() } : {}),
    });
    store.on('status', (s) => { const el = q('.status'); if (el) el.textContent = String(s?.status ?? s ?? ''); });
    store.on('event', (frame) => {
      for (const e of frame.events ?? [frame]) {
        const line = describe(e);
        if (state.paused) state.held.push(line); else show(line);
      }
    });
    store.connect();
  })();
  return () => store?.close();
}
