// 集群: every node with its raft role and gossip status, removal of dead nodes, and per
// node three live charts drawn from its Prometheus metrics (gathered by the node that served
// the console from every node: GET /api/v1/cluster/metrics).

import { get, del, session, parseMetrics, sum } from '../api.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, badge, confirm, toast, failed, fmtTime, sparkline } from '../ui.js';

add({
  'cluster.rack': ['机架', 'Rack'],
  'cluster.role': ['角色', 'Role'],
  'cluster.voter': ['投票者', 'Voter'],
  'cluster.status': ['状态', 'Status'],
  'cluster.lastContact': ['最近联系', 'Last contact'],
  'cluster.appliedIndex': ['已应用索引', 'Applied index'],
  'cluster.apiAddr': ['API 地址', 'API address'],
  'cluster.version': ['版本', 'Version'],
  'cluster.remove': ['移除', 'Remove'],
  'cluster.confirmRemove': ['确认将失联节点「{name}」移出集群？', 'Remove the dead node “{name}” from the cluster?'],
  'cluster.removed': ['节点已移除', 'Node removed'],
  'cluster.metrics': ['节点指标', 'Node metrics'],
  'cluster.metrics.help': ['每 2 秒采样，显示最近 60 个采样点', 'Sampled every 2 s; the last 60 samples'],
  'cluster.chart.connections': ['连接数', 'Connections'],
  'cluster.chart.messages': ['设备消息/秒', 'Device messages/s'],
  'cluster.chart.latency': ['Raft 应用延迟 (ms)', 'Raft apply latency (ms)'],
  'cluster.noMetrics': ['该节点当前无法访问，暂无指标', 'This node cannot be reached: no metrics'],
});

const NODES = '/api/v1/cluster/nodes';
const SAMPLES = 60;
const METRICS_EVERY = 2000;
const NODES_EVERY = 5000;

export const routes = [
  { path: '/cluster', menu: 'cluster', title: 'menu.cluster', render },
];

const CHARTS = [
  { key: 'connections', title: 'cluster.chart.connections', fmt: (v) => String(Math.round(v)) },
  { key: 'messages', title: 'cluster.chart.messages', fmt: (v) => v.toFixed(1) },
  { key: 'latency', title: 'cluster.chart.latency', fmt: (v) => v.toFixed(2) },
];

async function render(ctx) {
  let nodes = (await get(NODES)).items || [];
  const tableBox = h('div', { class: 'cluster-nodes' });
  const cardsBox = h('div', { class: 'cluster-cards' });
  // Per node: the last raw sample, the three series and the card's elements.
  const stats = new Map();

  const remove = async (n) => {
    if (!await confirm(t('cluster.confirmRemove', { name: n.id }), t('cluster.remove'), true)) return;
    try {
      await del(NODES + '/' + encodeURIComponent(n.id));
      toast(t('cluster.removed'));
      await refreshNodes();
    } catch (err) {
      failed(err);
    }
  };

  const paintTable = () => fill(tableBox, table([
    { title: t('common.id'), render: (n) => h('span', { class: 'mono node-id' }, n.id) },
    { title: t('cluster.rack'), render: (n) => n.rack || '-' },
    { title: t('cluster.role'), render: (n) => badge(n.role) },
    { title: t('cluster.voter'), render: (n) => (n.voter ? t('common.yes') : t('common.no')) },
    { title: t('cluster.status'), render: (n) => badge(n.status) },
    { title: t('cluster.lastContact'), render: (n) => (n.lastContact ? fmtTime(n.lastContact) : '-') },
    { title: t('cluster.appliedIndex'), render: (n) => (n.appliedIndex ?? '-') },
    { title: t('cluster.apiAddr'), render: (n) => h('span', { class: 'mono' }, n.apiAddr || '-') },
    { title: t('cluster.version'), render: (n) => n.version || '-' },
    { title: t('common.actions'), render: (n) => (session.isAdmin && n.status === 'dead'
      ? button(t('cluster.remove'), () => remove(n), 'btn-link danger remove')
      : '-') },
  ], nodes, { rowId: (n) => n.id }));

  const statOf = (id) => {
    let s = stats.get(id);
    if (s) return s;
    const charts = {};
    for (const c of CHARTS) {
      const value = h('span', { class: 'chart-value' }, '-');
      const plot = h('div', { class: 'chart-plot' }, sparkline([], { width: 220, height: 44 }));
      charts[c.key] = { value, plot, series: [] };
    }
    const state = h('span', { class: 'node-card-state' });
    const card = h('div', { class: 'node-card', dataset: { node: id } },
      h('div', { class: 'node-card-head' }, h('span', { class: 'node-card-title mono' }, id), state),
      h('div', { class: 'node-card-note' }),
      h('div', { class: 'charts' }, CHARTS.map((c) => h('div', { class: 'chart', dataset: { chart: c.key } },
        h('div', { class: 'chart-title' }, t(c.title), ' ', charts[c.key].value),
        charts[c.key].plot))));
    s = { card, state, charts, prev: null, busy: false };
    stats.set(id, s);
    return s;
  };

  const paintCards = () => {
    const cards = [];
    for (const n of nodes) {
      const s = statOf(n.id);
      const reachable = n.status === 'alive';
      fill(s.state, badge(reachable ? n.status : 'unreachable'));
      s.card.classList.toggle('unreachable', !reachable);
      fill(s.card.querySelector('.node-card-note'), reachable ? '' : t('cluster.noMetrics'));
      if (!reachable) s.prev = null; // a rate across the gap would mean nothing
      cards.push(s.card);
    }
    for (const id of [...stats.keys()]) if (!nodes.some((n) => n.id === id)) stats.delete(id);
    fill(cardsBox, cards);
  };

  const push = (s, key, v) => {
    const c = s.charts[key];
    c.series.push(v);
    if (c.series.length > SAMPLES) c.series.splice(0, c.series.length - SAMPLES);
    fill(c.value, CHARTS.find((x) => x.key === key).fmt(v));
    fill(c.plot, sparkline(c.series, { width: 220, height: 44 }));
  };

  // record turns one node's metrics text into the next point of its three charts.
  const record = (id, text) => {
    const s = statOf(id);
    const m = parseMetrics(text || '');
    const cur = {
      at: Date.now(),
      messages: sum(m, 'linkops_device_messages_total'),
      applySum: sum(m, 'linkops_raft_apply_seconds_sum'),
      applyCount: sum(m, 'linkops_raft_apply_seconds_count'),
    };
    push(s, 'connections', sum(m, 'linkops_listener_connections'));
    if (s.prev) {
      const secs = (cur.at - s.prev.at) / 1000;
      const dMsg = cur.messages - s.prev.messages;
      push(s, 'messages', secs > 0 && dMsg > 0 ? dMsg / secs : 0);
      const dCount = cur.applyCount - s.prev.applyCount;
      const dSum = cur.applySum - s.prev.applySum;
      push(s, 'latency', dCount > 0 && dSum >= 0 ? (dSum / dCount) * 1000 : 0);
    }
    s.prev = cur;
    s.card.classList.remove('unreachable');
  };

  // One call gathers every node's metrics through the node that served the console; a
  // node that did not answer comes back in `missing` (never a failed request).
  let sampling = false;
  const sampleAll = async () => {
    if (sampling || !ctx.alive) return;
    sampling = true;
    try {
      const r = await get('/api/v1/cluster/metrics');
      if (!ctx.alive) return;
      for (const it of r.items || []) if (statOf(it.serverId)) record(it.serverId, it.metrics);
      for (const miss of r.missing || []) {
        const s = statOf(miss.serverId);
        if (!s) continue;
        s.prev = null;
        fill(s.state, badge('unreachable'));
        s.card.classList.add('unreachable');
        s.card.title = miss.error || '';
      }
    } catch (err) {
      // The node serving the console did not answer: the next round asks again.
    } finally {
      sampling = false;
    }
  };

  let listing = false;
  async function refreshNodes() {
    if (listing || !ctx.alive) return;
    listing = true;
    try {
      const r = await get(NODES);
      if (!ctx.alive) return;
      nodes = r.items || [];
      paintTable();
      paintCards();
    } catch (err) {
      if (ctx.alive) failed(err);
    } finally {
      listing = false;
    }
  }

  paintTable();
  paintCards();
  sampleAll();
  const metricsTimer = setInterval(sampleAll, METRICS_EVERY);
  const nodesTimer = setInterval(refreshNodes, NODES_EVERY);
  ctx.onLeave(() => { clearInterval(metricsTimer); clearInterval(nodesTimer); });

  return page(t('menu.cluster'), [button(t('common.refresh'), () => refreshNodes(), 'refresh')],
    tableBox,
    h('h2', { class: 'section-title' }, t('cluster.metrics')),
    h('div', { class: 'field-help' }, t('cluster.metrics.help')),
    cardsBox);
}
