// The console's only way to the cluster: the public REST API of the node that served it,
// with the logged-in user's token. Problems (RFC 9457) become ApiError, whose `fields`
// maps each `errors[].field` to the server's message so forms can show it under the field.

import { add, t } from './i18n.js';

add({
  'api.unreachable': ['节点无应答：{msg}', 'the node did not answer: {msg}'],
  'api.uploadCut': ['上传中断', 'the upload was cut off'],
});

const TOKEN_KEY = 'linkops.token';
const USER_KEY = 'linkops.user';

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY) || ''; },
  get user() {
    try { return JSON.parse(localStorage.getItem(USER_KEY) || 'null'); } catch { return null; }
  },
  save(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
  get isAdmin() { return (this.user || {}).role === 'admin'; },
};

// ApiError is a refused or failed call: status, the problem's code and detail, and the
// per-field messages.
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
    this.fields = {};
    for (const e of this.problem.errors || []) {
      if (e && e.field) this.fields[e.field] = e.message;
    }
  }
}

// unauthorized is called when a token is refused: the app returns to the login page.
let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

function headers(extra) {
  const h = Object.assign({}, extra);
  if (session.token) h.Authorization = 'Bearer ' + session.token;
  return h;
}

async function problemOf(resp) {
  const text = await resp.text();
  try { return JSON.parse(text); } catch { return { detail: text.trim() || resp.statusText }; }
}

function refused(resp, problem) {
  if (resp.status === 401 && session.token) {
    session.clear();
    unauthorized();
  }
  return new ApiError(resp.status, problem);
}

// query builds "?a=1&b=2" from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// During an election the API answers 503 no_leader: the request was not applied, so it
// is sent again a few times (about 10 s in all, longer than an election takes) before the
// page shows the refusal.
const ELECTION_RETRIES = 4;
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const electing = (status, problem) => status === 503 && problem && problem.code === 'no_leader';

// call sends one JSON request and answers the decoded body (null for 204).
export async function call(method, path, body, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await callOnce(method, path, body, opts);
    } catch (err) {
      if (!(err instanceof ApiError) || !electing(err.status, err.problem) || attempt >= ELECTION_RETRIES) throw err;
      await pause(1000 * (attempt + 1));
    }
  }
}

async function callOnce(method, path, body, opts) {
  const init = { method, headers: headers(opts.headers), signal: opts.signal };
  if (body !== undefined && body !== null) {
    if (body instanceof FormData || body instanceof Blob) {
      init.body = body;
    } else {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { detail: t('api.unreachable', { msg: err.message }), code: 'unreachable' });
  }
  if (!resp.ok) throw refused(resp, await problemOf(resp));
  if (resp.status === 204) return null;
  const type = resp.headers.get('Content-Type') || '';
  if (type.includes('json')) return resp.json();
  return resp.text();
}

export const get = (path, params, opts) => call('GET', path + query(params), null, opts);
export const post = (path, body, opts) => call('POST', path, body === undefined ? {} : body, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
export const del = (path, opts) => call('DELETE', path, null, opts);

// list pages through a collection and answers every item (for pickers; at most `max`).
export async function listAll(path, params = {}, max = 2000) {
  const out = [];
  for (let page = 1; out.length < max; page++) {
    const r = await get(path, Object.assign({}, params, { page, pageSize: 500 }));
    out.push(...(r.items || []));
    if (!r.items || r.items.length < 500 || out.length >= (r.total || 0)) break;
  }
  return out;
}

// upload sends a multipart form with XMLHttpRequest, the one browser API that reports
// upload progress: onProgress(sentBytes, totalBytes).
export async function upload(method, path, form, onProgress) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await uploadOnce(method, path, form, onProgress);
    } catch (err) {
      if (!electing(err.status, err.problem) || attempt >= ELECTION_RETRIES) throw err;
      await pause(1000 * (attempt + 1));
    }
  }
}

function uploadOnce(method, path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    if (session.token) xhr.setRequestHeader('Authorization', 'Bearer ' + session.token);
    xhr.upload.onprogress = (e) => { if (onProgress && e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onerror = () => reject(new ApiError(0, { detail: t('api.uploadCut'), code: 'unreachable' }));
    xhr.onload = () => {
      let body = null;
      try { body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { body = { detail: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(body); return; }
      if (xhr.status === 401 && session.token) { session.clear(); unauthorized(); }
      reject(new ApiError(xhr.status, body));
    };
    xhr.send(form);
  });
}

// stream follows a text/event-stream with the token in the Authorization header (which
// EventSource cannot send): onEvent(name, data) for each event, data parsed as JSON when
// it is. Answers a function that stops it. onEnd(error) when it ends for any other reason.
export function stream(path, onEvent, onEnd) {
  const ctl = new AbortController();
  (async () => {
    let resp;
    try {
      resp = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal: ctl.signal });
      if (!resp.ok) throw refused(resp, await problemOf(resp));
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (!data.length) continue;
          let parsed = data.join('\n');
          try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
          onEvent(name, parsed);
        }
      }
      if (onEnd) onEnd(null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (onEnd) onEnd(err);
    }
  })();
  return () => ctl.abort();
}

// parseMetrics reads Prometheus text into {name: [{labels, value}]}.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const pair of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    }
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

// sum adds a metric's samples, optionally only those whose labels match `where`.
export function sum(metrics, name, where) {
  let total = 0;
  for (const s of metrics[name] || []) {
    if (where && !Object.entries(where).every(([k, v]) => s.labels[k] === v)) continue;
    total += s.value;
  }
  return total;
}
