// Webhooks: each one's state, its dead letters (events given up on, with the last error), and
// replaying them (admin routes of the REST API).
import { api } from './api.js';
import { t } from './i18n.js';

export function webhooksView(view) {
  const draw = async () => {
    view.replaceChildren();
    let hooks;
    try {
      ({ webhooks: hooks } = await api('/api/webhooks'));
    } catch (e) {
      view.textContent = e.message;
      return;
    }
    if (!hooks.length) view.textContent = t('none');
    for (const hook of hooks) {
      const box = document.createElement('div');
      box.className = 'panel';
      box.innerHTML = '<h3></h3><pre></pre><h3></h3><ol class="dead"></ol><button type="button" data-act="replay"></button>';
      const [title, dead] = box.querySelectorAll('h3');
      title.textContent = hook.id;
      box.querySelector('pre').textContent = JSON.stringify(hook, null, 2);
      dead.textContent = t('deadLetters');
      const { deadLetters } = await api(`/api/webhooks/${encodeURIComponent(hook.id)}/deliveries`);
      for (const d of deadLetters) {
        const li = document.createElement('li');
        li.textContent = JSON.stringify(d);
        box.querySelector('.dead').append(li);
      }
      const replay = box.querySelector('[data-act="replay"]');
      replay.textContent = t('replay');
      replay.disabled = !deadLetters.length;
      replay.addEventListener('click', async () => {
        await api(`/api/webhooks/${encodeURIComponent(hook.id)}/replay`, { method: 'POST' });
        draw();
      });
      view.append(box);
    }
  };
  draw();
  return null;
}
