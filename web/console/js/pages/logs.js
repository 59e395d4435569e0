// 日志管理: the access log (every API request) and the system log (every node's structured
// records) of the whole cluster, newest first, with the filters of SPEC §4.9 kept in the
// hash, a detail drawer, and a follow mode that polls for new records.

import { get } from '../api.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, tabs, drawer, kv, failed, fmtTime } from '../ui.js';

add({
  'logs.tab.access': ['访问日志', 'Access log'],
  'logs.tab.system': ['系统日志', 'System log'],
  'logs.from': ['开始时间', 'From'],
  'logs.to': ['结束时间', 'To'],
  'logs.allNodes': ['全部节点', 'All nodes'],
  'logs.allLevels': ['全部级别', 'All levels'],
  'logs.allMethods': ['全部方法', 'All methods'],
  'logs.user': ['用户', 'User'],
  'logs.status': ['状态码', 'Status'],
  'logs.path': ['路径前缀', 'Path prefix'],
  'logs.q': ['关键字', 'Text'],
  'logs.status.invalid': ['状态码须为 100–599 的整数', 'Status must be a whole number from 100 to 599'],
  'logs.followStop': ['停止跟随', 'Stop following'],
  'logs.following': ['实时跟随中：每 2 秒刷新，最多显示 500 条', 'Following: refreshed every 2 s, at most 500 records'],
  'logs.detail.access': ['访问日志详情', 'Access log record'],
  'logs.detail.system': ['系统日志详情', 'System log record'],
  'logs.f.id': ['ID', 'ID'],
  'logs.f.serverId': ['节点', 'Node'],
  'logs.f.action': ['操作', 'Action'],
  'logs.f.url': ['请求地址', 'URL'],
  'logs.f.httpMethod': ['请求方法', 'Method'],
  'logs.f.parameters': ['请求参数', 'Parameters'],
  'logs.f.ip': ['IP', 'IP'],
  'logs.f.username': ['用户', 'User'],
  'logs.f.status': ['状态码', 'Status'],
  'logs.f.requestTime': ['请求时间', 'Request time'],
  'logs.f.responseTime': ['响应时间', 'Response time'],
  'logs.f.durationMs': ['耗时(ms)', 'Duration (ms)'],
  'logs.f.exception': ['异常', 'Exception'],
  'logs.f.level': ['级别', 'Level'],
  'logs.f.name': ['日志名称', 'Logger'],
  'logs.f.message': ['消息', 'Message'],
  'logs.f.exceptionStack': ['异常堆栈', 'Exception stack'],
  'logs.f.fields': ['字段', 'Fields'],
  'logs.f.createTime': ['记录时间', 'Time'],
  'logs.f.caller': ['调用位置', 'Caller'],
});

const PATH = '/api/v1/logs/';
const PAGE_SIZE = 20;
const FOLLOW_MAX = 500;
const FOLLOW_EVERY = 2000;
// How far back each follow poll looks again: an access record carries the time its
// request started but reaches the store when it ended, so it may arrive late (the CLI
// does the same). Records already shown are not shown twice.
const FOLLOW_OVERLAP = 30 * 1000;

const LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
// Filters each tab understands; the common ones survive a tab switch.
const COMMON = ['from', 'to', 'node', 'q'];
const FILTERS = { access: [...COMMON, 'user', 'method', 'status', 'path'], system: [...COMMON, 'level'] };
const TIME = { access: 'requestTime', system: 'createTime' };
const OBJECT_FIELDS = ['parameters', 'fields', 'exceptionStack'];

export const routes = [
  { path: '/logs', menu: 'logs', title: 'menu.logs', render },
];

// hashOf builds the page's hash from a query object, leaving out empty values.
function hashOf(q) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return '/logs' + (s ? '?' + s : '');
}

// localInput turns an RFC 3339 time into a datetime-local value in the browser's zone.
function localInput(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// rfc3339 turns a datetime-local value into an RFC 3339 UTC time.
function rfc3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

function timeOf(kind, r) { return Date.parse(r[TIME[kind]]) || 0; }

// newestFirst orders like the server: time, then id, both descending.
function newestFirst(kind) {
  return (a, b) => (timeOf(kind, b) - timeOf(kind, a)) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function levelBadge(level) {
  return h('span', { class: 'badge level level-' + (level || 'none'), dataset: { level: level || '' } }, level || '-');
}

async function render(ctx) {
  const kind = ctx.query.tab === 'system' ? 'system' : 'access';
  const q = {};
  for (const k of FILTERS[kind]) if (ctx.query[k]) q[k] = ctx.query[k];
  const pageNo = Math.max(1, Number(ctx.query.page) || 1);
  const following = ctx.query.follow === '1';
  // snap is the "to" of the first page, kept while paging so that new records do not
  // shift the pages (what the CLI's --to is for).
  const snap = !following && !q.to && pageNo > 1 ? (ctx.query.snap || '') : '';

  const [nodes, r] = await Promise.all([
    get('/api/v1/cluster/nodes').then((x) => (x.items || []).map((n) => n.id)).catch(() => []),
    get(PATH + kind, Object.assign({}, q, { to: q.to || snap, page: following ? 1 : pageNo, pageSize: following ? 100 : PAGE_SIZE })),
  ]);
  const state = { kind, q, pageNo, snap: snap || r.to };
  const go = (extra) => ctx.go(hashOf(Object.assign({ tab: kind === 'access' ? '' : kind }, extra)));

  // --- filters ---
  const inputs = {};
  const from = inputs.from = h('input', { type: 'datetime-local', class: 'f-from', 'aria-label': t('logs.from'), title: t('logs.from'), value: localInput(q.from) });
  const to = inputs.to = h('input', { type: 'datetime-local', class: 'f-to', 'aria-label': t('logs.to'), title: t('logs.to'), value: localInput(q.to) });
  const node = inputs.node = h('select', { class: 'f-node', 'aria-label': t('common.node') },
    h('option', { value: '' }, t('logs.allNodes')),
    [...new Set([...nodes, ...(q.node ? [q.node] : [])])].map((id) => h('option', { value: id }, id)));
  node.value = q.node || '';
  const text = inputs.q = h('input', { class: 'f-q search', placeholder: t('logs.q'), value: q.q || '' });
  const extra = [];
  if (kind === 'system') {
    const level = inputs.level = h('select', { class: 'f-level', 'aria-label': t('logs.f.level') },
      h('option', { value: '' }, t('logs.allLevels')), LEVELS.map((l) => h('option', { value: l }, l)));
    level.value = (q.level || '').toUpperCase();
    extra.push(level);
  } else {
    inputs.user = h('input', { class: 'f-user', placeholder: t('logs.user'), value: q.user || '' });
    inputs.method = h('select', { class: 'f-method', 'aria-label': t('logs.f.httpMethod') },
      h('option', { value: '' }, t('logs.allMethods')), METHODS.map((m) => h('option', { value: m }, m)));
    inputs.method.value = (q.method || '').toUpperCase();
    inputs.status = h('input', { class: 'f-status', type: 'number', min: '100', max: '599', placeholder: t('logs.status'), value: q.status || '', style: { width: '110px', minWidth: '110px' } });
    inputs.path = h('input', { class: 'f-path', placeholder: t('logs.path'), value: q.path || '' });
    extra.push(inputs.user, inputs.method, inputs.status, inputs.path);
  }
  const search = () => {
    const next = {};
    for (const k of FILTERS[kind]) {
      const el = inputs[k];
      if (!el) continue;
      next[k] = (k === 'from' || k === 'to') ? rfc3339(el.value) : el.value.trim();
    }
    if (next.status && !(/^\d+$/.test(next.status) && Number(next.status) >= 100 && Number(next.status) <= 599)) {
      failed(new Error(t('logs.status.invalid')));
      return;
    }
    go(Object.assign(next, { follow: following ? '1' : '' }));
  };
  for (const el of Object.values(inputs)) {
    if (el.tagName === 'INPUT') el.addEventListener('keydown', (e) => { if (e.key === 'Enter') search(); });
  }

  // --- table ---
  let rows = r.items || [];
  const seen = new Set(rows.map((x) => x.id));
  const columns = kind === 'access' ? [
    { title: t('logs.f.requestTime'), class: 'nowrap', render: (x) => fmtTime(x.requestTime) },
    { title: t('logs.f.serverId'), key: 'serverId' },
    { title: t('logs.f.httpMethod'), key: 'httpMethod' },
    { title: t('logs.f.url'), class: 'log-url', render: (x) => h('span', { class: 'mono' }, x.url) },
    { title: t('logs.f.status'), render: (x) => h('span', { class: 'http-status' + (x.status >= 400 ? ' bad' : '') }, String(x.status)) },
    { title: t('logs.f.username'), render: (x) => x.username || '-' },
    { title: t('logs.f.ip'), key: 'ip' },
    { title: t('logs.f.durationMs'), render: (x) => (x.durationMs ?? 0).toFixed(1) },
    { title: t('logs.f.action'), render: (x) => x.action || '-' },
    { title: t('common.actions'), render: (x) => button(t('common.view'), () => detail(ctx, kind, x.id), 'btn-link view') },
  ] : [
    { title: t('logs.f.createTime'), class: 'nowrap', render: (x) => fmtTime(x.createTime) },
    { title: t('logs.f.serverId'), key: 'serverId' },
    { title: t('logs.f.level'), render: (x) => levelBadge(x.level) },
    { title: t('logs.f.name'), render: (x) => x.name || '-' },
    { title: t('logs.f.message'), class: 'log-message', render: (x) => x.message },
    { title: t('common.actions'), render: (x) => button(t('common.view'), () => detail(ctx, kind, x.id), 'btn-link view') },
  ];
  const tableBox = h('div', { class: 'logs-table', dataset: { kind } });
  const paint = () => fill(tableBox, table(columns, rows, { rowId: (x) => x.id }));
  paint();

  const missingBox = h('div', { class: 'logs-missing', role: 'status' });
  const showMissing = (missing) => {
    const ids = (missing || []).map((m) => m.serverId);
    missingBox.hidden = !ids.length;
    fill(missingBox, ids.length ? t('common.missing', { nodes: ids.join(', ') }) : '');
    missingBox.title = (missing || []).map((m) => m.serverId + ': ' + m.error).join('\n');
  };
  showMissing(r.missing);

  // --- paging (no total: `more` says whether a next page exists) ---
  const pagerBox = following
    ? h('div', { class: 'pager logs-following' }, t('logs.following'))
    : h('div', { class: 'pager logs-pager' },
      button(t('common.prevPage'), () => go(Object.assign({}, q, pageNo - 1 > 1 ? { page: pageNo - 1, snap: state.snap } : {})), 'prev' + (pageNo <= 1 ? ' disabled' : '')),
      h('span', { class: 'page-no' }, t('common.page', { page: pageNo })),
      button(t('common.nextPage'), () => go(Object.assign({}, q, { page: pageNo + 1, snap: q.to ? '' : state.snap })), 'next' + (r.more ? '' : ' disabled')));

  // --- follow mode ---
  if (following) {
    let busy = false;
    const poll = async () => {
      if (busy || !ctx.alive) return;
      busy = true;
      try {
        const newest = rows.length ? timeOf(kind, rows[0]) : Date.now() - 60 * 1000;
        let since = newest - FOLLOW_OVERLAP;
        if (q.from && Date.parse(q.from) > since) since = Date.parse(q.from);
        const params = Object.assign({}, q, { to: '', from: new Date(since).toISOString(), page: 1, pageSize: FOLLOW_MAX });
        const fresh = await get(PATH + kind, params);
        if (!ctx.alive) return;
        showMissing(fresh.missing);
        const added = (fresh.items || []).filter((x) => !seen.has(x.id));
        if (!added.length) return;
        for (const x of added) seen.add(x.id);
        rows = rows.concat(added).sort(newestFirst(kind)).slice(0, FOLLOW_MAX);
        if (seen.size > FOLLOW_MAX * 4) { seen.clear(); for (const x of rows) seen.add(x.id); }
        paint();
      } catch (err) {
        if (ctx.alive) failed(err);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(poll, FOLLOW_EVERY);
    ctx.onLeave(() => clearInterval(timer));
  }

  const followBtn = button(following ? t('logs.followStop') : t('common.follow'),
    () => go(Object.assign({}, q, { follow: following ? '' : '1' })),
    'follow' + (following ? ' active btn-primary' : ''));
  followBtn.setAttribute('aria-pressed', String(following));

  return page(t('menu.logs'), [followBtn],
    tabs([{ key: 'access', label: t('logs.tab.access') }, { key: 'system', label: t('logs.tab.system') }], kind, (key) => {
      const keep = {};
      for (const k of COMMON) if (q[k]) keep[k] = q[k];
      ctx.go(hashOf(Object.assign({ tab: key === 'access' ? '' : key }, keep, { follow: following ? '1' : '' })));
    }),
    h('div', { class: 'toolbar logs-filters' }, from, h('span', { class: 'muted' }, '–'), to, node, extra, text,
      button(t('common.search'), search, 'btn-primary search-go'),
      button(t('common.reset'), () => go({ follow: following ? '1' : '' }), 'reset')),
    missingBox,
    tableBox,
    pagerBox);
}

// detail shows every field of one record in a drawer.
async function detail(ctx, kind, id) {
  let rec;
  try {
    rec = await get(PATH + kind + '/' + encodeURIComponent(id));
  } catch (err) {
    failed(err);
    return;
  }
  if (!ctx.alive) return;
  const pairs = [];
  const order = kind === 'access'
    ? ['id', 'serverId', 'requestTime', 'responseTime', 'durationMs', 'httpMethod', 'url', 'status', 'action', 'username', 'ip', 'exception', 'parameters']
    : ['id', 'serverId', 'createTime', 'level', 'name', 'message', 'caller', 'fields', 'exceptionStack'];
  const keys = [...order.filter((k) => k in rec), ...Object.keys(rec).filter((k) => !order.includes(k))];
  for (const k of keys) {
    const v = rec[k];
    const label = t('logs.f.' + k) === 'logs.f.' + k ? k : t('logs.f.' + k);
    let shown;
    if (OBJECT_FIELDS.includes(k) || (v && typeof v === 'object')) {
      shown = h('pre', { class: 'json', dataset: { field: k } }, typeof v === 'string' ? v : JSON.stringify(v, null, 2));
    } else if (k === 'requestTime' || k === 'responseTime' || k === 'createTime') {
      shown = h('span', { dataset: { field: k }, title: v }, fmtTime(v));
    } else if (k === 'level') {
      shown = levelBadge(v);
    } else {
      shown = h('span', { class: k === 'id' || k === 'url' ? 'mono' : '', dataset: { field: k } }, v === '' || v === null || v === undefined ? '-' : String(v));
    }
    pairs.push([label, shown]);
  }
  const d = drawer(t(kind === 'access' ? 'logs.detail.access' : 'logs.detail.system'), h('div', { class: 'log-detail', dataset: { id } }, kv(pairs)));
  ctx.onLeave(() => d.close());
}
