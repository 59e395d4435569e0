// The console's frame: login, the left menu (the manual's 运维管理 menu, then devices and
// the cluster), the language switch, and a hash router that renders one page at a time.
//
// A page module exports `routes`: [{path: '/gateways/:id/edit', menu: 'gateways',
// title: 'i18n key', render(ctx)}]. render answers an element (or a promise of one);
// ctx has params, query, go(path), onLeave(fn) for timers and streams, and rerender().

import { call, get, session, onUnauthorized } from './api.js';
import { add, t, lang, setLang } from './i18n.js';
import { h, fill, button, failed, closeDialogs } from './ui.js';

import * as gateways from './pages/gateways.js';
import * as protocols from './pages/protocols.js';
import * as logs from './pages/logs.js';
import * as network from './pages/network.js';
import * as certificates from './pages/certificates.js';
import * as media from './pages/media.js';
import * as ota from './pages/ota.js';
import * as products from './pages/products.js';
import * as devices from './pages/devices.js';
import * as cluster from './pages/cluster.js';

add({ 'app.notFound': ['页面不存在', 'No such page'] });

// MENU mirrors the manual: 运维管理 and its pages in the manual's order, then devices
// and the cluster.
const MENU = [
  { group: 'menu.ops', items: [
    ['gateways', 'menu.gateways', '/gateways'],
    ['protocols', 'menu.protocols', '/protocols'],
    ['logs', 'menu.logs', '/logs'],
    ['network', 'menu.network', '/network'],
    ['certificates', 'menu.certificates', '/certificates'],
    ['media', 'menu.media', '/media'],
    ['ota', 'menu.ota', '/ota'],
  ] },
  { group: 'menu.devices.group', items: [
    ['products', 'menu.products', '/products'],
    ['devices', 'menu.devices', '/devices'],
  ] },
  { group: 'menu.system', items: [
    ['cluster', 'menu.cluster', '/cluster'],
  ] },
];

const ROUTES = [gateways, protocols, logs, network, certificates, media, ota, products, devices, cluster]
  .flatMap((m) => m.routes)
  .map((r) => Object.assign({ re: new RegExp('^' + r.path.replace(/:(\w+)/g, '(?<$1>[^/]+)') + '$') }, r));

const root = document.getElementById('app');
let leaving = [];
let health = null;

function currentHash() {
  const raw = location.hash.replace(/^#/, '') || '/gateways';
  const [path, qs] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

export function go(path) {
  if (('#' + path) === location.hash) render();
  else location.hash = '#' + path;
}

function leave() {
  for (const fn of leaving) { try { fn(); } catch { /* a page's cleanup must not stop the next page */ } }
  leaving = [];
  closeDialogs();
}

async function render() {
  leave();
  if (!session.token) { renderLogin(); return; }
  const { path, query } = currentHash();
  if (path === '/login') { go('/gateways'); return; }
  let route = null, params = {};
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (!m) continue;
    try {
      params = Object.fromEntries(Object.entries(m.groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
      route = r;
    } catch { /* a malformed %-escape: no such page */ }
    break;
  }
  const main = h('main', { class: 'main' });
  fill(root, layout(route ? route.menu : '', main));
  if (!route) { fill(main, h('section', { class: 'page' }, h('h1', { class: 'page-title' }, t('app.notFound')))); return; }
  document.title = t(route.title) + ' · linkops';
  const token = {};
  render.token = token;
  const ctx = {
    params, query, go,
    // A cleanup registered after the user left (a page still loading) runs at once.
    onLeave: (fn) => { if (render.token === token) leaving.push(fn); else fn(); },
    rerender: () => render(),
    // alive is false once the user moved on: late answers must not paint a page that left.
    get alive() { return render.token === token; },
  };
  fill(main, h('div', { class: 'loading' }, t('common.loading')));
  try {
    const el = await route.render(ctx);
    if (!ctx.alive) return;
    fill(main, el);
    // Tests (and curious users) can tell which page is painted, not just which is asked for.
    main.dataset.hash = location.hash || '#/gateways';
  } catch (err) {
    if (!ctx.alive) return;
    fill(main, h('section', { class: 'page' }, h('h1', { class: 'page-title' }, t(route.title)), h('div', { class: 'form-error' }, err.message || String(err))));
  }
}

function layout(active, main) {
  const user = session.user || {};
  const nav = h('nav', { class: 'menu', 'aria-label': 'menu' }, MENU.map((g) => h('div', { class: 'menu-group' },
    h('div', { class: 'menu-group-title' }, t(g.group)),
    g.items.map(([key, label, path]) => h('a', {
      href: '#' + path, class: 'menu-item' + (key === active ? ' active' : ''), dataset: { menu: key },
    }, t(label))))));
  const head = h('header', { class: 'topbar' },
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, '◆'), ' ', t('app.name')),
    h('div', { class: 'topbar-right' },
      health ? h('span', { class: 'node-chip', title: health.raftState }, t('login.node', { node: health.nodeId })) : null,
      h('span', { class: 'user-chip' }, user.username || ''),
      button(t('lang.switch'), () => { setLang(lang() === 'en' ? 'zh' : 'en'); render(); }, 'btn-ghost lang-switch'),
      button(t('login.logout'), () => { session.clear(); render(); }, 'btn-ghost logout')));
  return h('div', { class: 'shell' }, head, h('div', { class: 'body' }, nav, main));
}

function renderLogin() {
  document.title = t('login.title') + ' · linkops';
  const user = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', value: 'admin' });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const error = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const submit = async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const r = await call('POST', '/api/v1/auth/login', { username: user.value.trim(), password: pass.value });
      session.save(r.token, { username: r.username, role: r.role, expiresAt: r.expiresAt });
      if (currentHash().path === '/login') location.hash = '#/gateways';
      render();
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
    }
  };
  fill(root, h('div', { class: 'login' },
    h('form', { class: 'login-box', onsubmit: submit },
      h('div', { class: 'login-head' }, h('span', { class: 'logo' }, '◆'), h('h1', { class: 'page-title' }, t('login.title'))),
      h('div', { class: 'login-sub' }, t('app.name'), health ? ' · ' + t('login.node', { node: health.nodeId }) : ''),
      h('label', { for: 'login-username' }, t('login.username')), user,
      h('label', { for: 'login-password' }, t('login.password')), pass,
      error,
      h('button', { type: 'submit', class: 'btn btn-primary login-submit' }, t('login.submit')),
      button(t('lang.switch'), () => { setLang(lang() === 'en' ? 'zh' : 'en'); renderLogin(); }, 'btn-ghost lang-switch'))));
  pass.focus();
}

onUnauthorized(() => render());
window.addEventListener('hashchange', render);
get('/api/v1/health').then((r) => { health = r; render(); }, (err) => { failed(err); render(); });
