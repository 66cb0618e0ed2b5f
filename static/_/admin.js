// The server's configuration as an admin sees it: API keys (create — the key shown once — and
// revoke), the security rules (read-only, with their problems), backups (list, take one now).
import { api } from './api.js';
import { t } from './i18n.js';

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function failure(view, e) {
  view.replaceChildren(el('p', { className: 'message bad', textContent: e.message }));
}

export function keysView(view) {
  const draw = async (shown) => {
    let keys;
    try {
      ({ keys } = await api('/api/keys'));
    } catch (e) {
      return failure(view, e);
    }
    const form = el('form', { className: 'toolbar' },
      el('input', { name: 'name', placeholder: t('keyName'), required: true }),
      el('input', { name: 'role', placeholder: t('role'), value: 'admin', required: true }),
      el('input', { name: 'branches', placeholder: t('keyBranches') }),
      el('button', { type: 'submit', className: 'primary', textContent: t('createKey') }));
    const message = el('p', { className: 'message' });
    if (shown) {
      message.className = 'message good';
      message.append(`${t('keyShownOnce')} `, el('code', { className: 'new-key', textContent: shown }));
    }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const branches = String(data.get('branches') || '').split(',').map((b) => b.trim()).filter(Boolean);
      try {
        const made = await api('/api/keys', { method: 'POST', body: {
          name: data.get('name'), role: data.get('role'), ...(branches.length ? { branches } : {}) } });
        draw(made.key);
      } catch (e) {
        message.className = 'message bad';
        message.textContent = e.message;
      }
    });
    const rows = keys.map((k) => {
      const revoke = el('button', { type: 'button', className: 'danger', textContent: t('revoke'), disabled: !!k.revokedAt });
      revoke.dataset.key = k.name;
      revoke.addEventListener('click', async () => {
        if (!confirm(`${t('revoke')} ${k.name}?`)) return;
        try {
          await api(`/api/keys/${encodeURIComponent(k.name)}`, { method: 'DELETE' });
          draw();
        } catch (e) {
          message.className = 'message bad';
          message.textContent = e.message;
        }
      });
      const state = k.revokedAt ? `${t('revoked')} ${k.revokedAt}` : t('active');
      const tr = el('tr', {}, ...[k.name, k.role, (k.branches ?? ['*']).join(', '), k.createdAt, state]
        .map((v) => el('td', { textContent: v })), el('td', {}, revoke));
      tr.dataset.key = k.name;
      return tr;
    });
    const head = el('tr', {}, ...['keyName', 'role', 'branches', 'createdAt', 'state', ''].map((w) => el('th', { textContent: w ? t(w) : '' })));
    view.replaceChildren(form, message, el('div', { className: 'grid-wrap' },
      el('table', { className: 'grid keys' }, el('thead', {}, head), el('tbody', {}, ...rows))));
  };
  draw();
  return null;
}

export function rulesView(view) {
  (async () => {
    let rules;
    try {
      rules = await api('/api/rules');
    } catch (e) {
      return failure(view, e);
    }
    const problems = el('ul', { className: 'problems' }, ...rules.problems.map((p) => el('li', { className: 'message bad', textContent: p })));
    const state = el('p', { className: `message ${rules.problems.length ? 'bad' : 'good'}`,
      textContent: `${rules.file}: ${rules.enforced ? t('rulesEnforced') : t('rulesOpen')} · ${rules.problems.length} ${t('problems')}` });
    view.replaceChildren(state, problems, el('pre', { className: 'rules-text', textContent: rules.text ?? '' }));
  })();
  return null;
}

export function checkView(view) {
  (async () => {
    let problems;
    try {
      ({ problems } = await api('/api/check'));
    } catch (e) {
      return failure(view, e);
    }
    const count = (severity) => problems.filter((p) => p.severity === severity).length;
    const summary = el('p', { className: `message ${count('error') ? 'bad' : 'good'}`,
      textContent: `${t('checkIntro')} ${count('error')} ${t('errors')}, ${count('warning')} ${t('warnings')}, ${count('note')} ${t('notes')}` });
    const list = el('ul', { className: 'problems' }, ...problems.map((p) => {
      const li = el('li', { className: `severity-${p.severity}`, textContent: p.line });
      li.dataset.severity = p.severity;
      return li;
    }));
    view.replaceChildren(summary, list);
  })();
  return null;
}

export function backupsView(view) {
  const draw = async () => {
    let backups;
    try {
      backups = await api('/api/backups');
    } catch (e) {
      return failure(view, e);
    }
    if (!backups.configured) {
      view.replaceChildren(el('p', { className: 'message', textContent: t('noBackupTarget') }));
      return;
    }
    const take = el('button', { type: 'button', className: 'primary', textContent: t('takeBackup'), disabled: backups.running });
    const message = el('p', { className: 'message' });
    take.addEventListener('click', async () => {
      try {
        await api('/api/backups', { method: 'POST' });
        message.className = 'message good';
        message.textContent = t('backupRequested');
      } catch (e) {
        message.className = 'message bad';
        message.textContent = e.message;
      }
    });
    const rows = backups.snapshots.map((s) => el('tr', {}, ...[s.name, s.createdAt, String(s.modules.length), String(s.files),
      `${(s.bytes / 1024).toFixed(0)} KiB`].map((v) => el('td', { textContent: v }))));
    const head = el('tr', {}, ...['snapshot', 'createdAt', 'modules', 'files', 'size'].map((w) => el('th', { textContent: t(w) })));
    view.replaceChildren(el('div', { className: 'toolbar' }, take, el('span', { textContent: backups.target })), message,
      el('div', { className: 'grid-wrap' }, el('table', { className: 'grid backups' }, el('thead', {}, head), el('tbody', {}, ...rows))));
  };
  draw();
  const timer = setInterval(draw, 3000);
  return () => clearInterval(timer);
}
