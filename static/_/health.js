// Server health from /metrics, sampled each second: writes per second, open connections, and
// the mean commit and fan-out latency over the last second, each a small SVG line of the last
// minute (drawn here: nothing loads from outside the server).
import { metrics } from './api.js';
import { t } from './i18n.js';

const POINTS = 60;

export function healthView(view) {
  const charts = [
    ['writesPerSec', (now, prev) => (prev ? Math.max(0, now.mishkah_writes_total - prev.mishkah_writes_total) : 0)],
    ['connections', (now) => now.mishkah_connections ?? 0],
    ['commitMs', (now, prev) => meanMs(now, prev, 'mishkah_commit_seconds')],
    ['fanoutMs', (now, prev) => meanMs(now, prev, 'mishkah_fanout_seconds')],
  ];
  view.innerHTML = '<div class="charts"></div>';
  const series = charts.map(() => []);
  const boxes = charts.map(([name]) => {
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.chart = name;
    box.innerHTML = '<h3></h3><div class="now">–</div><svg viewBox="0 0 600 100" preserveAspectRatio="none"><polyline points=""/></svg>';
    box.querySelector('h3').textContent = t(name);
    view.querySelector('.charts').append(box);
    return box;
  });
  let prev = null;
  const sample = async () => {
    const now = await metrics().catch(() => null);
    if (!now) return;
    charts.forEach(([, value], i) => {
      const v = value(now, prev);
      series[i].push(v);
      if (series[i].length > POINTS) series[i].shift();
      draw(boxes[i], series[i]);
    });
    prev = now;
  };
  sample();
  const timer = setInterval(sample, 1000);
  return () => clearInterval(timer);
}

function meanMs(now, prev, name) {
  if (!prev) return 0;
  const count = now[`${name}_count`] - prev[`${name}_count`];
  return count > 0 ? ((now[`${name}_sum`] - prev[`${name}_sum`]) / count) * 1000 : 0;
}

function draw(box, values) {
  const max = Math.max(1e-9, ...values);
  const step = 600 / (POINTS - 1);
  const points = values.map((v, i) => `${(i + POINTS - values.length) * step},${100 - (v / max) * 95}`).join(' ');
  box.querySelector('polyline').setAttribute('points', points);
  const last = values[values.length - 1];
  box.querySelector('.now').textContent = Number.isInteger(last) ? String(last) : last.toFixed(2);
  box.dataset.last = String(last);
}
