// A table: rows in a grid through the filter language (its parse error shown where it points),
// sorted by a column, paged by keyset cursor, columns chosen; a row opens below to edit.
import { api, modulePath } from './api.js';
import { t, label } from './i18n.js';
import { rowPanel } from './row.js';

const PAGE = 50;

export function tableView(view, place) {
  if (!place.table) {
    view.textContent = t('pick');
    return null;
  }
  const base = `${modulePath(place.branch, place.module)}/tables/${encodeURIComponent(place.table)}`;
  const state = { filter: '', sort: [], after: null, pages: [], hidden: new Set(), fields: [], key: ['id'] };
  view.innerHTML = `
    <div class="toolbar">
      <input class="filter" name="filter" spellcheck="false" placeholder="">
      <button type="button" class="primary" data-act="apply"></button>
      <button type="button" data-act="columns"></button>
      <button type="button" data-act="insert"></button>
    </div>
    <div class="filter-error" hidden></div>
    <div class="columns" hidden></div>
    <p class="count"></p>
    <div class="grid-wrap"><table class="grid"><thead></thead><tbody></tbody></table></div>
    <div class="toolbar paging">
      <button type="button" data-act="first"></button>
      <button type="button" data-act="next"></button>
    </div>
    <div class="row-panel"></div>`;
  const q = (sel) => view.querySelector(sel);
  q('.filter').placeholder = t('filter');
  for (const [act, word] of [['apply', 'apply'], ['columns', 'columns'], ['insert', 'insert'], ['first', 'first'], ['next', 'next']]) {
    q(`[data-act="${act}"]`).textContent = t(word);
  }

  const columns = () => state.fields.filter((f) => !state.hidden.has(f));

  async function load() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (state.filter) params.set('filter', state.filter);
    if (state.sort.length) params.set('sort', state.sort.map(([f, desc]) => (desc ? `-${f}` : f)).join(','));
    if (state.after) params.set('after', state.after);
    const error = q('.filter-error');
    let page;
    let count;
    try {
      [page, count] = await Promise.all([
        api(`${base}?${params}`),
        api(`${base}/count${state.filter ? `?filter=${encodeURIComponent(state.filter)}` : ''}`),
      ]);
    } catch (e) {
      if (e.code === 'invalid-filter' && Number.isInteger(e.details?.position)) {
        error.textContent = `${state.filter}\n${' '.repeat(e.details.position)}^ ${e.message}`;
      } else {
        error.textContent = e.message;
      }
      error.hidden = false;
      return;
    }
    error.hidden = true;
    q('.count').textContent = `${count.count} ${t('count')}`;
    state.next = page.meta?.hasMore ? page.meta.next?.after : null;
    q('[data-act="next"]').disabled = !state.next;
    q('[data-act="first"]').disabled = !state.after;
    drawRows(page.rows);
  }

  function drawHead() {
    const tr = document.createElement('tr');
    for (const f of columns()) {
      const th = document.createElement('th');
      const sorted = state.sort.find(([name]) => name === f);
      th.textContent = f + (sorted ? (sorted[1] ? ' ▼' : ' ▲') : '');
      th.dataset.field = f;
      th.addEventListener('click', () => {
        state.sort = sorted && !sorted[1] ? [[f, true]] : sorted ? [] : [[f, false]];
        state.after = null;
        drawHead();
        load();
      });
      tr.append(th);
    }
    q('thead').replaceChildren(tr);
  }

  function drawRows(rows) {
    const body = q('tbody');
    body.replaceChildren();
    if (!rows.length) {
      const td = document.createElement('td');
      td.colSpan = columns().length || 1;
      td.textContent = t('noRows');
      body.append(document.createElement('tr'));
      body.lastChild.append(td);
    }
    for (const row of rows) {
      const tr = document.createElement('tr');
      tr.dataset.key = keyOf(row);
      for (const f of columns()) {
        const td = document.createElement('td');
        td.textContent = label(row[f]);
        tr.append(td);
      }
      tr.addEventListener('click', () => open(keyOf(row)));
      body.append(tr);
    }
  }

  function keyOf(row) {
    const values = state.key.map((k) => row[k]);
    return values.length === 1 ? String(values[0]) : JSON.stringify(values);
  }

  function drawColumns() {
    const box = q('.columns');
    box.replaceChildren();
    for (const f of state.fields) {
      const l = document.createElement('label');
      const c = document.createElement('input');
      c.type = 'checkbox';
      c.checked = !state.hidden.has(f);
      c.dataset.field = f;
      c.addEventListener('change', () => {
        if (c.checked) state.hidden.delete(f); else state.hidden.add(f);
        drawHead();
        load();
      });
      l.append(c, ` ${f}`);
      box.append(l);
    }
  }

  function open(key) {
    rowPanel(q('.row-panel'), { base, key, table: state.table, onChange: load });
  }

  q('[data-act="apply"]').addEventListener('click', () => { state.filter = q('.filter').value.trim(); state.after = null; state.pages = []; load(); });
  q('.filter').addEventListener('keydown', (e) => { if (e.key === 'Enter') q('[data-act="apply"]').click(); });
  q('[data-act="columns"]').addEventListener('click', () => { q('.columns').hidden = !q('.columns').hidden; });
  q('[data-act="insert"]').addEventListener('click', () => rowPanel(q('.row-panel'), { base, key: null, table: state.table, onChange: load }));
  q('[data-act="next"]').addEventListener('click', () => { state.pages.push(state.after); state.after = state.next; load(); });
  q('[data-act="first"]').addEventListener('click', () => { state.after = null; state.pages = []; load(); });

  (async () => {
    const { schema } = await api(`${modulePath(place.branch, place.module)}/schema`);
    const table = schema.tables?.[place.table];
    state.table = table;
    state.fields = table ? table.fields.map((f) => f.name) : [];
    if (table?.primary_key?.length) state.key = table.primary_key;
    for (const system of ['version', 'updatedAt']) if (!state.fields.includes(system)) state.fields.push(system);
    drawColumns();
    drawHead();
    await load();
  })();
  return null;
}
