// The REST API as the console calls it: JSON in and out, the admin token when there is one, and
// errors in the server's shape ({error, message, details}) thrown as ApiError.
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error;
    this.details = body?.details;
  }
}

let token = sessionStorage.getItem('mishkah-console-token') || '';

export const getToken = () => token;
export function setToken(value) {
  token = value;
  sessionStorage.setItem('mishkah-console-token', value);
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** The metrics in Prometheus' text format, as `{name → value}` (labels dropped, summed). */
export async function metrics() {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const text = await (await fetch('/metrics', { headers })).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m && !m[2]?.includes('le=')) out[m[1]] = (out[m[1]] ?? 0) + Number(m[3]);
  }
  return out;
}

export const modulePath = (branch, module) =>
  `/api/branches/${encodeURIComponent(branch)}/modules/${encodeURIComponent(module)}`;
