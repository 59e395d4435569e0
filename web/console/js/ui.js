// Building blocks every page uses: elements, tables, forms whose fields show the server's
// messages, dialogs, drawers, toasts, badges and the step bar. Nothing here talks to the
// API; nothing uses innerHTML, so a value from the cluster is always text, never markup.

import { t } from './i18n.js';

// h builds an element: h('div', {class: 'x', onclick: fn}, child, ...). Children may be
// strings, numbers, nodes, arrays or null (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties an element and fills it with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// button: a class list with 'disabled' makes a really disabled button (keyboard too).
export function button(label, onclick, cls = '') {
  return h('button', { type: 'button', class: 'btn ' + cls, onclick, disabled: /(^|\s)disabled(\s|$)/.test(cls) }, label);
}

// once wraps an async action so that a second click while the first runs does nothing
// (a double-clicked 保存 must not create two records).
export function once(fn) {
  let running = false;
  return async (...args) => {
    if (running) return undefined;
    running = true;
    try { return await fn(...args); } finally { running = false; }
  };
}

// page is the frame of every page: its title (h1.page-title), actions and body.
export function page(title, actions, ...body) {
  return h('section', { class: 'page' },
    h('header', { class: 'page-head' }, h('h1', { class: 'page-title' }, title), h('div', { class: 'page-actions' }, actions || [])),
    body);
}

// fmtTime shows an RFC 3339 time in the browser's zone, or '-'.
export function fmtTime(s) {
  if (!s || s.startsWith('0001-')) return '-';
  const d = new Date(s);
  if (isNaN(d)) return s;
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

// badge shows a state word translated, coloured by its class.
export function badge(state) {
  return h('span', { class: 'badge badge-' + (state || 'none'), dataset: { state: state || '' } }, state ? t('state.' + state) : '-');
}

// table renders rows under columns [{title, render(row) | key, class}].
export function table(columns, rows, opts = {}) {
  const head = h('tr', null, columns.map((c) => h('th', { class: c.class }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', { dataset: opts.rowId ? { id: opts.rowId(r) } : null },
      columns.map((c) => h('td', { class: c.class }, c.render ? c.render(r) : (r[c.key] ?? '-')))))
    : [h('tr', null, h('td', { class: 'empty', colspan: columns.length }, opts.empty || t('common.none')))];
  return h('table', { class: 'table' }, h('thead', null, head), h('tbody', null, body));
}

// pager: previous / next over a paged list.
export function pager(pageNo, pageSize, total, onPage) {
  const pages = Math.max(1, Math.ceil((total || 0) / pageSize));
  return h('div', { class: 'pager' },
    h('span', null, t('common.total', { n: total || 0 })),
    button(t('common.prevPage'), () => onPage(pageNo - 1), pageNo <= 1 ? 'disabled' : ''),
    h('span', null, t('common.page', { page: pageNo }) + ' / ' + pages),
    button(t('common.nextPage'), () => onPage(pageNo + 1), pageNo >= pages ? 'disabled' : ''));
}

// --- values at dotted paths: "configuration.port", "cluster[0].configuration.host" ---

function parsePath(path) {
  const out = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]+)((\[\d+\])*)$/.exec(part);
    if (!m) { out.push(part); continue; }
    out.push(m[1]);
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

export function getPath(obj, path) {
  let v = obj;
  for (const k of parsePath(path)) {
    if (v === undefined || v === null) return undefined;
    v = v[k];
  }
  return v;
}

export function setPath(obj, path, value) {
  const keys = parsePath(path);
  let v = obj;
  keys.forEach((k, i) => {
    if (i === keys.length - 1) { v[k] = value; return; }
    if (v[k] === undefined || v[k] === null) v[k] = typeof keys[i + 1] === 'number' ? [] : {};
    v = v[k];
  });
  return obj;
}

// --- forms ---

// A field is {name, label, kind, options, help, placeholder, readonly, secret, rows,
// file, onchange, show(values)}: kind is text | number | password | select | textarea |
// checkbox | json | list. `name` is the dotted path of the value in the request body, the
// same path the server names in errors[].field.
export function form(fields, initial = {}) {
  const rows = [];
  const byName = {};
  const general = h('div', { class: 'form-error', role: 'alert', hidden: true });
  for (const f of fields) {
    if (f.kind === 'section') { rows.push(h('h3', { class: 'form-section' }, f.label)); continue; }
    const input = control(f, getPath(initial, f.name));
    const error = h('div', { class: 'field-error', dataset: { field: f.name } });
    const row = h('div', { class: 'field', dataset: { field: f.name } },
      h('label', { class: 'field-label' }, f.label, f.required ? h('span', { class: 'req' }, ' *') : null),
      h('div', { class: 'field-body' }, input.el,
        f.help ? h('div', { class: 'field-help' }, f.help) : null,
        f.secret ? h('div', { class: 'field-help' }, t('common.secretKept')) : null,
        error));
    byName[f.name] = { f, input, row, error };
    rows.push(row);
  }
  const el = h('div', { class: 'form' }, general, rows);
  const api = {
    el,
    field: (name) => byName[name],
    names: () => Object.keys(byName),
    get: (name) => byName[name] && byName[name].input.get(),
    set: (name, v) => byName[name] && byName[name].input.set(v),
    // value builds the request body: empty inputs are left out, so the server's
    // defaults apply and a secret left empty is kept.
    value(base = {}) {
      const out = JSON.parse(JSON.stringify(base));
      for (const { f, input, row } of Object.values(byName)) {
        if (row.hidden || f.readonly || f.omit) continue;
        const v = input.get();
        if (v === undefined) continue;
        setPath(out, f.name, v);
      }
      return out;
    },
    // refresh shows or hides the rows whose show(values) depends on other fields.
    refresh() {
      const values = api.value();
      for (const { f, row } of Object.values(byName)) {
        if (f.show) row.hidden = !f.show(values);
      }
    },
    clearErrors() {
      general.hidden = true;
      general.replaceChildren();
      for (const { row, error } of Object.values(byName)) { row.classList.remove('has-error'); error.textContent = ''; }
    },
    // showErrors puts each errors[].field message under its field; what names no field
    // here (or no field at all) goes to the form's own alert. Answers how many it placed.
    showErrors(err, prefix = '') {
      api.clearErrors();
      const loose = [];
      let placed = 0;
      const fieldsOf = (err && err.fields) || {};
      for (const [path, msg] of Object.entries(fieldsOf)) {
        const name = prefix && path.startsWith(prefix) ? path.slice(prefix.length) : path;
        const target = byName[name] || closest(byName, name);
        if (target && !target.row.hidden) {
          target.row.classList.add('has-error');
          target.error.textContent = target.error.textContent ? target.error.textContent + '; ' + msg : msg;
          placed++;
        } else {
          loose.push(path + ': ' + msg);
        }
      }
      if (!Object.keys(fieldsOf).length || loose.length) {
        general.hidden = false;
        fill(general, h('div', null, (err && err.message) || String(err)), loose.map((m) => h('div', null, m)));
      }
      return placed;
    },
  };
  for (const { f, input } of Object.values(byName)) {
    input.el.addEventListener('change', () => { api.refresh(); if (f.onchange) f.onchange(input.get(), api); });
  }
  api.refresh();
  return api;
}

// closest finds the field for the longest known prefix of path ("configuration.points[2]"
// → "configuration.points").
function closest(byName, path) {
  let best = null;
  for (const name of Object.keys(byName)) {
    if ((path.startsWith(name + '.') || path.startsWith(name + '[')) && (!best || name.length > best.length)) best = name;
  }
  return best ? byName[best] : null;
}

function control(f, initial) {
  const id = 'f-' + f.name.replace(/[^a-zA-Z0-9]/g, '-') + '-' + Math.random().toString(36).slice(2, 7);
  const common = { id, name: f.name, placeholder: f.placeholder, readonly: f.readonly, disabled: f.disabled };
  switch (f.kind) {
    case 'select': {
      const el = h('select', common, (f.options || []).map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h('option', { value }, label);
      }));
      if (initial !== undefined && initial !== null) el.value = String(initial);
      return { el, get: () => (el.value === '' ? undefined : (f.number ? Number(el.value) : el.value)), set: (v) => { el.value = v ?? ''; } };
    }
    case 'checkbox': {
      const box = h('input', Object.assign({ type: 'checkbox', checked: !!initial }, common));
      const el = h('label', { class: 'check' }, box, ' ', f.text || '');
      return { el, get: () => box.checked, set: (v) => { box.checked = !!v; } };
    }
    case 'textarea':
    case 'json':
    case 'list': {
      const show = f.kind === 'json' ? (initial === undefined ? '' : JSON.stringify(initial, null, 2))
        : f.kind === 'list' ? (initial || []).join('\n') : (initial ?? '');
      const area = h('textarea', Object.assign({ rows: f.rows || 6, spellcheck: 'false' }, common), show);
      area.value = show;
      const parts = [area];
      if (f.file) {
        const picker = h('input', { type: 'file', class: 'file-input', accept: f.accept });
        picker.addEventListener('change', async () => {
          if (picker.files[0]) { area.value = await picker.files[0].text(); area.dispatchEvent(new Event('change', { bubbles: true })); }
        });
        parts.push(h('div', { class: 'file-row' }, h('label', { class: 'btn btn-small' }, t('common.upload'), picker)));
      }
      const el = h('div', { class: 'area' }, parts);
      const get = () => {
        const v = area.value;
        if (f.kind === 'list') { const items = v.split('\n').map((s) => s.trim()).filter(Boolean); return items.length ? items : undefined; }
        if (v.trim() === '') return undefined;
        if (f.kind === 'json') { try { return JSON.parse(v); } catch { return v; } }
        return v;
      };
      const set = (v) => { area.value = f.kind === 'json' ? JSON.stringify(v, null, 2) : f.kind === 'list' ? (v || []).join('\n') : (v ?? ''); };
      return { el, get, set };
    }
    default: {
      const type = f.kind === 'number' ? 'number' : f.kind === 'password' ? 'password' : 'text';
      const el = h('input', Object.assign({ type, autocomplete: f.kind === 'password' ? 'new-password' : 'off' }, common));
      if (initial !== undefined && initial !== null && f.kind !== 'password') el.value = String(initial);
      const get = () => {
        const v = el.value.trim();
        if (v === '') return undefined;
        if (f.kind === 'number') { const n = Number(v); return Number.isNaN(n) ? v : n; }
        return f.kind === 'password' ? el.value : v;
      };
      return { el, get, set: (v) => { el.value = v ?? ''; } };
    }
  }
}

// --- dialogs ---

// modal opens a dialog; answers {close, body}. Escape and the backdrop close it.
const openDialogs = new Set();

// closeDialogs closes every open dialog and drawer: the app calls it when the page changes,
// so that nothing a dialog polls outlives the page that opened it.
export function closeDialogs() {
  for (const close of [...openDialogs]) close();
}

export function modal(title, body, actions, opts = {}) {
  const box = h('div', { class: 'modal ' + (opts.wide ? 'modal-wide' : ''), role: 'dialog', 'aria-label': title },
    h('header', { class: 'modal-head' }, h('h2', null, title), button('×', () => close(), 'btn-icon modal-x')),
    h('div', { class: 'modal-body' }, body),
    actions && actions.length ? h('footer', { class: 'modal-foot' }, actions) : null);
  const back = h('div', { class: 'backdrop' }, box);
  back.addEventListener('mousedown', (e) => { if (e.target === back && !opts.sticky) close(); });
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  document.addEventListener('keydown', onKey);
  document.body.append(back);
  let closed = false;
  openDialogs.add(close);
  function close() {
    if (closed) return;
    closed = true;
    openDialogs.delete(close);
    document.removeEventListener('keydown', onKey);
    back.remove();
    if (opts.onClose) opts.onClose();
  }
  return { close, box };
}

// confirm asks a yes/no question; answers true for OK.
export function confirm(message, okLabel, danger) {
  return new Promise((resolve) => {
    let answered = false;
    const m = modal(t('common.ok'), h('p', { class: 'confirm-text' }, message), [
      button(t('common.cancel'), () => { answered = true; resolve(false); m.close(); }, 'confirm-cancel'),
      button(okLabel || t('common.ok'), () => { answered = true; resolve(true); m.close(); }, 'btn-primary confirm-ok' + (danger ? ' btn-danger' : '')),
    ], { onClose: () => { if (!answered) resolve(false); } });
  });
}

// drawer slides a panel in from the right (log details).
export function drawer(title, body) {
  const panel = h('aside', { class: 'drawer', role: 'dialog', 'aria-label': title },
    h('header', { class: 'modal-head' }, h('h2', null, title), button('×', () => close(), 'btn-icon drawer-x')),
    h('div', { class: 'drawer-body' }, body));
  const back = h('div', { class: 'backdrop backdrop-drawer' }, panel);
  back.addEventListener('mousedown', (e) => { if (e.target === back) close(); });
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  document.addEventListener('keydown', onKey);
  document.body.append(back);
  openDialogs.add(close);
  function close() { openDialogs.delete(close); document.removeEventListener('keydown', onKey); back.remove(); }
  return { close };
}

// toast shows a short message in the corner: kind ok | error.
export function toast(message, kind = 'ok') {
  let host = document.getElementById('toasts');
  if (!host) { host = h('div', { id: 'toasts' }); document.body.append(host); }
  const el = h('div', { class: 'toast toast-' + kind, role: kind === 'error' ? 'alert' : 'status' }, message);
  host.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 3000);
}

// failed shows an API error that belongs to no form.
export function failed(err) {
  toast(err && err.message ? err.message : String(err), 'error');
}

// steps is the manual's step bar: labels with the current one marked.
export function steps(labels, current) {
  return h('ol', { class: 'steps' }, labels.map((l, i) => h('li', {
    class: i < current ? 'step done' : i === current ? 'step current' : 'step',
  }, h('span', { class: 'step-no' }, String(i + 1)), h('span', { class: 'step-label' }, l))));
}

// kv shows [label, value] pairs as a description list.
export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? '-')]));
}

// progress draws a bar for a percentage.
export function progress(percent, label) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuenow': String(Math.round(p)), 'aria-valuemin': '0', 'aria-valuemax': '100' },
    h('div', { class: 'progress-bar', style: { width: p + '%' } }),
    h('span', { class: 'progress-label' }, label ?? (Math.round(p) + '%')));
}

// tabs: [{key, label}] with one active; onSelect(key).
export function tabs(items, active, onSelect) {
  return h('div', { class: 'tabs', role: 'tablist' }, items.map((it) => h('button', {
    type: 'button', role: 'tab', class: 'tab' + (it.key === active ? ' active' : ''), 'aria-selected': String(it.key === active),
    dataset: { tab: it.key }, onclick: () => onSelect(it.key),
  }, it.label)));
}

// sparkline draws the last values as an SVG line, with the latest value beside it.
export function sparkline(values, opts = {}) {
  const w = opts.width || 180, hgt = opts.height || 40;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(hgt));
  svg.setAttribute('class', 'spark');
  const vals = values.filter((v) => Number.isFinite(v));
  const max = Math.max(opts.min || 0, ...vals, 1e-9);
  if (vals.length > 1) {
    const step = w / (values.length - 1);
    const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 2 - ((Number.isFinite(v) ? v : 0) / max) * (hgt - 4)).toFixed(1)}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.setAttribute('class', 'spark-line');
    svg.append(line);
  }
  return svg;
}

// formModal shows form f in a dialog whose 保存 sends submit(f.value()): a refusal shows
// under the fields it names, success closes the dialog and calls done.
export function formModal(title, f, submit, done, opts = {}) {
  let saving = false;
  const save = async () => {
    if (saving) return;
    saving = true;
    try {
      await submit(f.value());
      toast(t('common.saved'));
      m.close();
      if (done) done();
    } catch (err) {
      f.showErrors(err);
    } finally {
      saving = false;
    }
  };
  const m = modal(title, f.el, [
    button(t('common.cancel'), () => m.close(), 'cancel'),
    button(t('common.save'), save, 'btn-primary save'),
  ], Object.assign({ sticky: true }, opts));
  const first = m.box.querySelector('input:not([readonly]):not([type=checkbox]), select, textarea');
  if (first) first.focus();
  return m;
}

// every calls fn each ms while the page is shown: one call at a time, none once the user
// has left; a failure goes to onError (the next round tries again). Answers a function
// that runs a round now.
export function every(ctx, ms, fn, onError) {
  let busy = false;
  const round = async () => {
    if (busy || !ctx.alive) return;
    busy = true;
    try {
      await fn();
    } catch (err) {
      if (ctx.alive && onError) onError(err);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(round, ms);
  ctx.onLeave(() => clearInterval(timer));
  return round;
}
