// One row: its fields to edit (each as JSON; the version read is sent, so a change made
// meanwhile is a conflict shown side by side, never overwritten unseen), delete with
// confirmation, a new row, and its history from the event log — who, when, what changed —
// with any version restorable.
import { api } from './api.js';
import { t } from './i18n.js';

const SYSTEM = new Set(['version', 'createdAt', 'updatedAt']);
const pretty = (v) => JSON.stringify(v, null, 2);

export async function rowPanel(panel, { base, key, table, onChange }) {
  panel.replaceChildren();
  const box = document.createElement('div');
  box.className = 'panel';
  panel.append(box);
  let stored = null;
  if (key !== null) {
    try {
      stored = (await api(`${base}/${encodeURIComponent(key)}`)).record;
    } catch (e) {
      box.textContent = e.message;
      return;
    }
  }
  const fields = [...new Set([...(table?.fields ?? []).map((f) => f.name), ...Object.keys(stored ?? {})])]
    .filter((f) => !SYSTEM.has(f));
  box.innerHTML = `<h3></h3><div class="fields"></div><p class="message"></p>
    <div class="toolbar"><button type="button" class="primary" data-act="save"></button>
    <button type="button" class="danger" data-act="delete"></button>
    <button type="button" data-act="history"></button><button type="button" data-act="close"></button></div>
    <div class="conflict"></div><ol class="history"></ol>`;
  const q = (sel) => box.querySelector(sel);
  q('h3').textContent = key === null ? t('insert') : `${t('edit')} ${key} · v${stored?.version ?? '?'}`;
  for (const [act, word] of [['save', 'save'], ['delete', 'delete'], ['history', 'history'], ['close', 'close']]) {
    q(`[data-act="${act}"]`).textContent = t(word);
  }
  q('[data-act="delete"]').hidden = key === null;
  q('[data-act="history"]').hidden = key === null;
  for (const f of fields) {
    const l = document.createElement('label');
    l.textContent = f;
    const area = document.createElement('textarea');
    area.name = f;
    area.rows = 1;
    area.value = stored && f in stored ? JSON.stringify(stored[f]) : '';
    q('.fields').append(l, area);
  }
  const say = (text, good) => {
    q('.message').textContent = text;
    q('.message').className = `message ${good ? 'good' : 'bad'}`;
  };

  /** The fields as typed: only those changed (a new row: every one filled in). */
  function edits() {
    const out = {};
    for (const area of q('.fields').querySelectorAll('textarea')) {
      const before = stored && area.name in stored ? JSON.stringify(stored[area.name]) : '';
      if (area.value === before || (key === null && area.value === '')) continue;
      try {
        out[area.name] = area.value === '' ? null : JSON.parse(area.value);
      } catch {
        throw new Error(`${area.name}: ${t('badJson')}`);
      }
    }
    return out;
  }

  function withKey(record) {
    for (const k of table?.primary_key?.length ? table.primary_key : ['id']) if (stored && k in stored) record[k] = stored[k];
    return record;
  }

  async function save(record, expectedVersion) {
    const method = key === null ? 'POST' : 'PATCH';
    const body = key === null ? { record } : { record: withKey(record), expectedVersion };
    try {
      const done = await api(base, { method, body });
      const version = done.record?.version ?? done.ack?.version;
      await onChange();
      await rowPanel(panel, { base, key: key ?? keyOf(done.record, table), table, onChange });
      panel.querySelector('.message').textContent = `${t('saved')} ${version}`;
      panel.querySelector('.message').className = 'message good';
    } catch (e) {
      if (e.code === 'version-conflict') return conflict(record);
      say(e.message, false);
    }
  }

  /** Mine and the stored row side by side; the user picks. */
  async function conflict(mine) {
    const theirs = (await api(`${base}/${encodeURIComponent(key)}`)).record;
    const c = q('.conflict');
    c.innerHTML = `<p class="message bad"></p><div class="side-by-side"><div><h3></h3><pre class="mine"></pre></div>
      <div><h3></h3><pre class="theirs"></pre></div></div><div class="toolbar">
      <button type="button" class="primary" data-act="keep-mine"></button><button type="button" data-act="take-theirs"></button></div>`;
    c.querySelector('p').textContent = `${t('conflict')} (v${stored.version} → v${theirs.version})`;
    const [h1, h2] = c.querySelectorAll('h3');
    h1.textContent = `${t('mine')} (v${stored.version})`;
    h2.textContent = `${t('theirs')} (v${theirs.version})`;
    c.querySelector('.mine').textContent = pretty({ ...stored, ...mine });
    c.querySelector('.theirs').textContent = pretty(theirs);
    c.querySelector('[data-act="keep-mine"]').textContent = t('keepMine');
    c.querySelector('[data-act="take-theirs"]').textContent = t('takeTheirs');
    c.querySelector('[data-act="keep-mine"]').addEventListener('click', () => save(mine, theirs.version));
    c.querySelector('[data-act="take-theirs"]').addEventListener('click', () => rowPanel(panel, { base, key, table, onChange }));
  }

  async function showHistory() {
    const params = new URLSearchParams({ table: table?.name ?? '', key, limit: '200' });
    const path = base.replace(/\/tables\/[^/]+$/, '');
    const { events } = await api(`${path}/events?${params}`);
    const list = q('.history');
    list.replaceChildren();
    let before = null;
    for (const e of events) {
      const li = document.createElement('li');
      const row = e.change.row ?? null;
      const head = document.createElement('div');
      const who = [e.actor, e.source].filter(Boolean).map((w) => ` · ${w}`).join('');
      head.textContent = `#${e.sequence} · ${e.createdAt} · ${t({ insert: 'created', update: 'changed', delete: 'removed' }[e.change.kind] ?? e.change.kind)} · v${e.change.version}${who}`;
      li.append(head, diff(before, row));
      if (row && e.change.version !== stored.version) {
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.act = 'restore';
        b.dataset.version = String(e.change.version);
        b.textContent = t('restore');
        b.addEventListener('click', async () => {
          const record = Object.fromEntries(Object.entries(row).filter(([k]) => !SYSTEM.has(k)));
          try {
            await api(base, { method: 'PUT', body: { record, expectedVersion: stored.version } });
            await onChange();
            await rowPanel(panel, { base, key, table, onChange });
          } catch (err) {
            say(err.message, false);
          }
        });
        li.append(b);
      }
      list.prepend(li);
      before = row;
    }
  }

  q('[data-act="save"]').addEventListener('click', () => {
    let record;
    try {
      record = edits();
    } catch (e) {
      return say(e.message, false);
    }
    save(record, stored?.version);
  });
  q('[data-act="delete"]').addEventListener('click', async () => {
    if (!confirm(t('confirmDelete'))) return;
    try {
      await api(`${base}/${encodeURIComponent(key)}`, { method: 'DELETE' });
      panel.replaceChildren();
      await onChange();
    } catch (e) {
      say(e.message, false);
    }
  });
  q('[data-act="history"]').addEventListener('click', showHistory);
  q('[data-act="close"]').addEventListener('click', () => panel.replaceChildren());
}

function keyOf(row, table) {
  const keys = table?.primary_key?.length ? table.primary_key : ['id'];
  const values = keys.map((k) => row?.[k]);
  return values.length === 1 ? String(values[0]) : JSON.stringify(values);
}

/** What changed from one version of a row to the next, field by field. */
function diff(before, after) {
  const pre = document.createElement('pre');
  const names = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].filter((k) => !SYSTEM.has(k));
  for (const k of names) {
    const [a, b] = [before?.[k], after?.[k]].map((v) => (v === undefined ? undefined : JSON.stringify(v)));
    if (a === b) continue;
    if (a !== undefined) {
      const del = document.createElement('div');
      del.className = 'diff-del';
      del.textContent = `- ${k}: ${a}`;
      pre.append(del);
    }
    if (b !== undefined) {
      const add = document.createElement('div');
      add.className = 'diff-add';
      add.textContent = `+ ${k}: ${b}`;
      pre.append(add);
    }
  }
  return pre;
}
