// 网络组件: the manual's type-specific forms, 共享配置 (one configuration for every node) or
// 独立配置 (one row per node), the live status of every node, and the debug panel that
// follows what the component receives.

import { get, post, put, listAll, stream, session } from '../api.js';
import { switchState, remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, form, toast, fmtTime, badge, kv, pager, every, once } from '../ui.js';

add({
  'net.title.new': ['新增网络组件', 'New network component'],
  'net.title.edit': ['编辑网络组件', 'Edit network component'],
  'net.title.detail': ['网络组件详情', 'Network component'],
  'net.cluster': ['集群', 'Cluster'],
  'net.shared': ['共享配置', 'Shared configuration'],
  'net.independent': ['独立配置', 'Per-node configuration'],
  'net.shared.help': ['集群下所有节点共用同一配置，本地地址默认为0.0.0.0', 'Every node of the cluster uses the same configuration; the local address defaults to 0.0.0.0'],
  'net.independent.help': ['集群下不同节点使用不同配置；未勾选的节点不运行该组件', 'Each node has its own configuration; a node left unticked does not run the component'],
  'net.nodeOn': ['在节点 {node} 上运行', 'Run on node {node}'],
  'net.host': ['本地地址', 'Local address'],
  'net.host.help': ['绑定到服务器上的网卡地址，绑定到所有网卡：0.0.0.0', 'The interface address to bind; 0.0.0.0 binds every interface'],
  'net.port': ['本地端口', 'Local port'],
  'net.port.help': ['监听指定端口的请求', 'The port to listen on'],
  'net.publicHost': ['公网地址', 'Public address'],
  'net.publicHost.help': ['对外提供访问的地址，内网环境填写服务器的内网IP地址', 'The address devices use; on a private network, the server\'s private IP'],
  'net.publicPort': ['公网端口', 'Public port'],
  'net.secure.tls': ['TLS', 'TLS'],
  'net.secure.dtls': ['DTLS', 'DTLS'],
  'net.secure.text': ['开启加密', 'encrypt'],
  'net.certId': ['证书', 'Certificate'],
  'net.privateKeyAlias': ['私钥别名', 'Private key alias'],
  'net.parserType': ['粘拆包规则', 'Framing'],
  'net.parser.DIRECT': ['不处理', 'none (each read)'],
  'net.parser.DELIMITED': ['分隔符', 'delimiter'],
  'net.parser.FIXED_LENGTH': ['固定长度', 'fixed length'],
  'net.parser.LENGTH_FIELD': ['长度字段', 'length field'],
  'net.parser.SCRIPT': ['自定义脚本', 'script'],
  'net.delimited': ['分隔符', 'Delimiter'],
  'net.delimited.help': ['转义文本如 \\r\\n，或十六进制 0x…', 'escaped text such as \\r\\n, or hex 0x…'],
  'net.size': ['长度', 'Length'],
  'net.offset': ['长度字段偏移', 'Length field offset'],
  'net.length': ['长度字段字节数', 'Length field bytes'],
  'net.little': ['小端', 'Little-endian'],
  'net.script': ['脚本', 'Script'],
  'net.script.help': ['定义 function split(bytes)，返回第一条完整消息的长度，0 表示需要更多数据，-1 表示数据错误', 'defines function split(bytes): the length of the first complete message, 0 for more bytes, -1 for garbage'],
  'net.keepAliveTimeout': ['连接超时（秒）', 'Idle timeout (s)'],
  'net.keepAliveTimeout.help': ['静默超过该时长的连接将被关闭，0 表示不超时', 'a connection silent this long is closed; 0 = never'],
  'net.maxMessageSize': ['最大消息长度', 'Max message size'],
  'net.maxMessageSize.help': ['单次收发消息的最大长度，单位：字节；设置过大可能会影响性能', 'largest message in bytes; very large values cost performance'],
  'net.remoteHost': ['远程地址', 'Remote host'],
  'net.remotePort': ['远程端口', 'Remote port'],
  'net.clientId': ['clientId', 'Client id'],
  'net.username': ['用户名', 'Username'],
  'net.password': ['密码', 'Password'],
  'net.topicPrefix': ['订阅前缀', 'Subscription prefix'],
  'net.topicPrefix.help': ['当连接的服务为EMQ时，可能需要使用共享的订阅前缀，如：$queue或$share', 'a shared-subscription prefix such as $queue/ or $share/group/'],
  'net.topics': ['订阅主题', 'Topics'],
  'net.topics.help': ['每行一个', 'one per line'],
  'net.status': ['运行状态', 'Status on each node'],
  'net.address': ['地址', 'Address'],
  'net.connections': ['连接数', 'Connections'],
  'net.error': ['错误', 'Error'],
  'net.since': ['自', 'Since'],
  'net.debug': ['调试', 'Debug'],
  'net.debug.start': ['开始调试', 'Start debugging'],
  'net.debug.stop': ['停止调试', 'Stop debugging'],
  'net.debug.all': ['所有节点', 'every node'],
  'net.debug.ready': ['已连接节点：{nodes}', 'streaming from: {nodes}'],
  'net.debug.missing': ['未应答：{nodes}', 'did not answer: {nodes}'],
  'net.debug.dropped': ['丢弃 {n} 条（读取过慢）', '{n} events dropped (reader too slow)'],
  'net.debug.ended': ['调试流已结束', 'the debug stream ended'],
  'net.config': ['配置', 'Configuration'],
  'net.noNodes': ['集群中没有节点', 'the cluster has no nodes'],
  'net.type.UDP': ['UDP', 'UDP'],
  'net.type.TCP_SERVER': ['TCP服务', 'TCP server'],
  'net.type.WEB_SOCKET_SERVER': ['WebSocket服务', 'WebSocket server'],
  'net.type.MQTT_CLIENT': ['MQTT客户端', 'MQTT client'],
  'net.type.HTTP_SERVER': ['HTTP服务', 'HTTP server'],
  'net.type.MQTT_SERVER': ['MQTT服务', 'MQTT server'],
  'net.type.COAP_SERVER': ['CoAP服务', 'CoAP server'],
});

const PATH = '/api/v1/network-components';
export const TYPES = ['UDP', 'TCP_SERVER', 'WEB_SOCKET_SERVER', 'MQTT_CLIENT', 'HTTP_SERVER', 'MQTT_SERVER', 'COAP_SERVER'];
const DATAGRAM = new Set(['UDP', 'COAP_SERVER']);

export const routes = [
  { path: '/network', menu: 'network', title: 'menu.network', render: list },
  { path: '/network/new', menu: 'network', title: 'net.title.new', render: (ctx) => edit(ctx, null) },
  { path: '/network/:id/edit', menu: 'network', title: 'net.title.edit', render: (ctx) => edit(ctx, ctx.params.id) },
  { path: '/network/:id', menu: 'network', title: 'net.title.detail', render: detail },
];

const enc = encodeURIComponent;

function portsOf(c) {
  const one = (cfg) => cfg ? (c.type === 'MQTT_CLIENT' ? `${cfg.remoteHost || ''}:${cfg.remotePort || ''}` : `${cfg.host || '0.0.0.0'}:${cfg.port || ''}`) : '';
  if (c.shareCluster !== false) return one(c.configuration);
  return (c.cluster || []).map((n) => `${n.serverId} ${one(n.configuration)}`).join(', ');
}

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const filters = { q: ctx.query.q || '', type: ctx.query.type || '', state: ctx.query.state || '' };
  const r = await get(PATH, Object.assign({ page: pageNo, pageSize: 20, sort: '-createdAt' }, filters));
  const q = h('input', { placeholder: t('common.name'), value: filters.q });
  const type = h('select', null, h('option', { value: '' }, t('common.type')), TYPES.map((v) => h('option', { value: v }, t('net.type.' + v))));
  type.value = filters.type;
  const state = h('select', null, h('option', { value: '' }, t('common.state')), ['enabled', 'disabled'].map((v) => h('option', { value: v }, t('state.' + v))));
  state.value = filters.state;
  const find = () => ctx.go(`/network?q=${enc(q.value.trim())}&type=${type.value}&state=${state.value}`);
  q.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const admin = session.isAdmin;
  return page(t('menu.network'), admin ? [button(t('common.add'), () => ctx.go('/network/new'), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, q, type, state, button(t('common.search'), find), button(t('common.reset'), () => ctx.go('/network'))),
    table([
      { title: t('common.name'), render: (c) => h('a', { href: '#/network/' + enc(c.id) }, c.name) },
      { title: t('common.type'), render: (c) => t('net.type.' + c.type) },
      { title: t('net.cluster'), render: (c) => t(c.shareCluster === false ? 'net.independent' : 'net.shared') },
      { title: t('net.address'), render: (c) => h('span', { class: 'mono' }, portsOf(c)) },
      { title: t('common.state'), render: (c) => badge(c.state) },
      { title: t('common.description'), render: (c) => c.description || '-' },
      { title: t('common.actions'), render: (c) => h('div', { class: 'row-actions' },
        button(t('common.view'), () => ctx.go('/network/' + enc(c.id)), 'btn-link view'),
        admin ? [
          button(t('common.edit'), () => ctx.go(`/network/${enc(c.id)}/edit`), 'btn-link edit'),
          button(t(c.state === 'enabled' ? 'common.disable' : 'common.enable'), async () => { if (await switchState(PATH, c)) ctx.rerender(); }, 'btn-link toggle'),
          button(t('common.delete'), async () => { if (await remove(PATH, c)) ctx.rerender(); }, 'btn-link danger delete'),
        ] : null) },
    ], r.items, { rowId: (c) => c.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/network?q=${enc(filters.q)}&type=${filters.type}&state=${filters.state}&page=${p}`)));
}

// configFields are the manual's parameters of one component type; names are relative to
// a configuration object.
function configFields(type, certs, editing) {
  const secureLabel = t(DATAGRAM.has(type) ? 'net.secure.dtls' : 'net.secure.tls');
  const certOptions = [['', '-']].concat(certs.map((c) => [c.id, c.name]));
  const secureFields = [
    { name: 'secure', label: secureLabel, kind: 'checkbox', text: t('net.secure.text') },
    { name: 'certId', label: t('net.certId'), kind: 'select', options: certOptions, show: (v) => !!v.secure },
    { name: 'privateKeyAlias', label: t('net.privateKeyAlias'), show: (v) => !!v.secure },
  ];
  if (type === 'MQTT_CLIENT') {
    return [
      { name: 'remoteHost', label: t('net.remoteHost'), required: true },
      { name: 'remotePort', label: t('net.remotePort'), kind: 'number', required: true },
      { name: 'clientId', label: t('net.clientId') },
      { name: 'username', label: t('net.username') },
      { name: 'password', label: t('net.password'), kind: 'password', secret: editing },
      { name: 'maxMessageSize', label: t('net.maxMessageSize'), kind: 'number', help: t('net.maxMessageSize.help') },
      { name: 'topicPrefix', label: t('net.topicPrefix'), help: t('net.topicPrefix.help') },
      { name: 'topics', label: t('net.topics'), kind: 'list', rows: 3, help: t('net.topics.help') },
      ...secureFields,
    ];
  }
  const fields = [
    { name: 'host', label: t('net.host'), placeholder: '0.0.0.0', help: t('net.host.help') },
    { name: 'port', label: t('net.port'), kind: 'number', required: true, help: t('net.port.help') },
    { name: 'publicHost', label: t('net.publicHost'), help: t('net.publicHost.help') },
    { name: 'publicPort', label: t('net.publicPort'), kind: 'number' },
    ...secureFields,
  ];
  if (type === 'TCP_SERVER') {
    const parser = (v) => (v.parserType || 'DIRECT');
    fields.push(
      { name: 'parserType', label: t('net.parserType'), kind: 'select', options: ['DIRECT', 'DELIMITED', 'FIXED_LENGTH', 'LENGTH_FIELD', 'SCRIPT'].map((p) => [p, t('net.parser.' + p)]) },
      { name: 'parserConfiguration.delimited', label: t('net.delimited'), help: t('net.delimited.help'), show: (v) => parser(v) === 'DELIMITED' },
      { name: 'parserConfiguration.size', label: t('net.size'), kind: 'number', show: (v) => parser(v) === 'FIXED_LENGTH' },
      { name: 'parserConfiguration.offset', label: t('net.offset'), kind: 'number', show: (v) => parser(v) === 'LENGTH_FIELD' },
      { name: 'parserConfiguration.length', label: t('net.length'), kind: 'select', number: true, options: [['', '-'], '1', '2', '3', '4', '8'], show: (v) => parser(v) === 'LENGTH_FIELD' },
      { name: 'parserConfiguration.little', label: t('net.little'), kind: 'checkbox', show: (v) => parser(v) === 'LENGTH_FIELD' },
      { name: 'parserConfiguration.script', label: t('net.script'), kind: 'textarea', rows: 6, help: t('net.script.help'), show: (v) => parser(v) === 'SCRIPT' },
      { name: 'keepAliveTimeout', label: t('net.keepAliveTimeout'), kind: 'number', help: t('net.keepAliveTimeout.help') },
    );
  }
  if (type === 'MQTT_SERVER') {
    fields.push({ name: 'maxMessageSize', label: t('net.maxMessageSize'), kind: 'number', help: t('net.maxMessageSize.help') });
  }
  return fields;
}

// nodeIds answers the cluster's nodes, for the per-node rows.
async function nodeIds() {
  const r = await get('/api/v1/cluster/nodes');
  return (r.items || []).map((n) => n.id).sort();
}

async function edit(ctx, id) {
  const [current, certs, nodes] = await Promise.all([
    id ? get(PATH + '/' + enc(id)) : null,
    listAll('/api/v1/certificates'),
    nodeIds(),
  ]);
  const rec = current || { type: 'MQTT_SERVER', shareCluster: true };
  const top = form([
    { name: 'name', label: t('common.name'), required: true },
    { name: 'type', label: t('common.type'), kind: 'select', options: TYPES.map((v) => [v, t('net.type.' + v)]), required: true, onchange: () => paint() },
    { name: 'shareCluster', label: t('net.cluster'), kind: 'select', options: [['true', t('net.shared')], ['false', t('net.independent')]], onchange: () => paint() },
  ], { name: rec.name, type: rec.type, shareCluster: String(rec.shareCluster !== false) });
  const desc = form([{ name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 }], rec);
  const configHost = h('div', { class: 'config' });
  let shared = null; // the shared configuration's form
  let perNode = []; // [{serverId, on, form}]
  // clusterError shows, above the node rows, the server's word on the rows as a whole
  // (the field "cluster": none ticked).
  const clusterError = h('div', { class: 'field-error cluster-error', role: 'alert', hidden: true });

  // paint draws the configuration part for the chosen type and cluster mode, keeping
  // what was typed where the fields still exist.
  function paint() {
    const type = top.get('type');
    const isShared = top.get('shareCluster') !== 'false';
    // A stored secret is kept only where the same configuration is edited: switching
    // between 共享 and 独立 leaves the server no entry to keep it from, so it is asked again.
    const keeps = !!current && (rec.shareCluster !== false) === isShared;
    const fields = configFields(type, certs, keeps);
    const help = h('div', { class: 'field-help node-help' }, t(isShared ? 'net.shared.help' : 'net.independent.help'));
    if (isShared) {
      const keep = shared ? shared.value() : (rec.shareCluster !== false ? rec.configuration : (rec.cluster || [])[0]?.configuration) || {};
      shared = form(fields, keep);
      perNode = [];
      fill(configHost, h('div', { class: 'form-section-help' }, help), shared.el);
      return;
    }
    const before = Object.fromEntries(perNode.map((p) => [p.serverId, p]));
    const stored = Object.fromEntries((rec.cluster || []).map((n) => [n.serverId, n.configuration]));
    const ids = [...new Set([...nodes, ...Object.keys(stored)])];
    perNode = ids.map((serverId) => {
      const prev = before[serverId];
      const initial = prev ? prev.form.value() : (stored[serverId] || (shared ? shared.value() : {}));
      const on = h('input', { type: 'checkbox', checked: prev ? prev.on.checked : (!current || rec.shareCluster !== false || serverId in stored) });
      const f = form(fields, initial);
      const row = h('div', { class: 'node-row', dataset: { node: serverId } },
        h('label', { class: 'node-row-title check' }, on, ' ', t('net.nodeOn', { node: serverId })), f.el);
      const sync = () => { f.el.hidden = !on.checked; };
      on.addEventListener('change', sync);
      sync();
      return { serverId, on, form: f, row };
    });
    shared = null;
    clusterError.hidden = true;
    fill(configHost, help, clusterError, perNode.length ? h('div', { class: 'node-rows' }, perNode.map((p) => p.row)) : h('div', { class: 'muted' }, t('net.noNodes')));
  }
  paint();

  // body builds the request; rows tells which cluster[] index is which node, so the
  // server's cluster[k].… errors land in the right row.
  function body() {
    const b = Object.assign({}, desc.value(), { name: top.get('name'), type: top.get('type'), shareCluster: top.get('shareCluster') !== 'false' });
    const rows = [];
    if (b.shareCluster) {
      b.configuration = shared.value();
    } else {
      b.cluster = [];
      for (const p of perNode) {
        if (!p.on.checked) continue;
        rows.push(p);
        b.cluster.push({ serverId: p.serverId, configuration: p.form.value() });
      }
    }
    return { b, rows };
  }

  const save = once(async () => {
    const { b, rows } = body();
    try {
      if (current) await put(PATH + '/' + enc(current.id), b);
      else await post(PATH, b);
      toast(t('common.saved'));
      ctx.go('/network');
    } catch (err) {
      const own = {}, byRow = rows.map(() => ({}));
      let cfg = {};
      for (const [path, msg] of Object.entries(err.fields || {})) {
        const m = /^cluster\[(\d+)\]\.configuration\.(.+)$/.exec(path);
        if (m && byRow[Number(m[1])]) byRow[Number(m[1])][m[2]] = msg;
        else if (path.startsWith('configuration.') && shared) cfg[path.slice('configuration.'.length)] = msg;
        else own[path] = msg;
      }
      const sub = (fields) => Object.assign(Object.create(err), { fields });
      const placedCfg = shared ? shared.showErrors(sub(cfg)) : 0;
      rows.forEach((p, i) => { if (Object.keys(byRow[i]).length) p.form.showErrors(sub(byRow[i])); else p.form.clearErrors(); });
      desc.clearErrors();
      if (own.description) desc.showErrors(sub({ description: own.description }));
      delete own.description;
      const placedCluster = !shared && !!own.cluster;
      clusterError.hidden = !placedCluster;
      clusterError.textContent = placedCluster ? own.cluster : '';
      if (placedCluster) delete own.cluster;
      // The top form also carries the problem's own words when no field placed it.
      if (Object.keys(own).length || (!placedCfg && !rows.length && !placedCluster) || !Object.keys(err.fields || {}).length) top.showErrors(sub(own));
      else top.clearErrors();
      if (shared && !placedCfg) shared.clearErrors();
    }
  });

  return page(t(current ? 'net.title.edit' : 'net.title.new'), [button(t('common.back'), () => ctx.go('/network'))],
    h('div', { class: 'form' }, top.el, h('h3', { class: 'form-section' }, t('net.config')), configHost, desc.el),
    h('div', { class: 'form-foot' }, button(t('common.cancel'), () => ctx.go('/network')), button(t('common.save'), save, 'btn-primary save')));
}

// statusTable shows per-node status items {serverId, state, error, address, connections, since}.
export function statusTable(items, withConnections = true) {
  return table([
    { title: t('common.node'), key: 'serverId' },
    { title: t('common.state'), render: (s) => badge(s.state) },
    { title: t('net.address'), render: (s) => h('span', { class: 'mono' }, s.address || '-') },
    withConnections ? { title: t('net.connections'), render: (s) => String(s.connections ?? 0) } : null,
    { title: t('net.error'), render: (s) => s.error ? h('span', { class: 'status-error' }, s.error) : '-' },
    { title: t('net.since'), render: (s) => fmtTime(s.since) },
  ].filter(Boolean), items || [], { rowId: (s) => s.serverId });
}

async function detail(ctx) {
  const id = ctx.params.id;
  const c = await get(PATH + '/' + enc(id));
  const statusHost = h('div', { class: 'status-host' });
  const refresh = async () => {
    try {
      const s = await get(`${PATH}/${enc(id)}/status`);
      if (ctx.alive) fill(statusHost, statusTable(s.items));
    } catch (err) { if (ctx.alive) fill(statusHost, h('div', { class: 'form-error' }, err.message)); }
  };
  await refresh();
  every(ctx, 2000, refresh);

  const sections = [
    page(t('net.title.detail') + ' · ' + c.name, [
      button(t('common.back'), () => ctx.go('/network')),
      session.isAdmin ? button(t('common.edit'), () => ctx.go(`/network/${enc(id)}/edit`), 'edit') : null,
      session.isAdmin ? button(t(c.state === 'enabled' ? 'common.disable' : 'common.enable'), async () => { if (await switchState(PATH, c)) ctx.rerender(); }, 'toggle') : null,
    ],
    kv([
      [t('common.id'), c.id],
      [t('common.type'), t('net.type.' + c.type)],
      [t('net.cluster'), t(c.shareCluster === false ? 'net.independent' : 'net.shared')],
      [t('net.address'), portsOf(c)],
      [t('common.state'), badge(c.state)],
      [t('common.description'), c.description || '-'],
    ]),
    h('h3', null, t('net.status')), statusHost),
  ];
  if (session.isAdmin) sections.push(debugPanel(ctx, id));
  return h('div', null, sections);
}

// debugPanel follows GET …/debug: ready, connect, disconnect, message and dropped events,
// merged from every node (or one, chosen in the select).
function debugPanel(ctx, id) {
  const out = h('div', { class: 'stream debug-stream' });
  const nodeSel = h('select', { class: 'debug-node' }, h('option', { value: '' }, t('net.debug.all')));
  get('/api/v1/cluster/nodes').then((r) => {
    for (const n of r.items || []) nodeSel.append(h('option', { value: n.id }, n.id));
  }, () => {});
  let stop = null;
  const line = (name, text) => {
    out.append(h('div', { class: 'stream-line', dataset: { event: name } }, h('span', { class: 'stream-event' }, name), text));
    while (out.childElementCount > 500) out.firstElementChild.remove();
    out.scrollTop = out.scrollHeight;
  };
  const toggle = h('button', { type: 'button', class: 'btn btn-primary debug-toggle' }, t('net.debug.start'));
  const end = () => { if (stop) stop(); stop = null; toggle.textContent = t('net.debug.start'); };
  toggle.addEventListener('click', () => {
    if (stop) { end(); return; }
    toggle.textContent = t('net.debug.stop');
    const path = `${PATH}/${enc(id)}/debug` + (nodeSel.value ? '?node=' + enc(nodeSel.value) : '');
    stop = stream(path, (name, d) => {
      if (name === 'ready') {
        line(name, t('net.debug.ready', { nodes: (d.nodes || []).join(', ') || '-' }) + ((d.missing || []).length ? ' · ' + t('net.debug.missing', { nodes: d.missing.map((m) => m.serverId || m).join(', ') }) : ''));
      } else if (name === 'dropped') {
        line(name, t('net.debug.dropped', { n: d.count ?? d }));
      } else if (name === 'message') {
        line(name, `${fmtTime(d.time)} ${d.serverId} ${d.remote || ''} ${d.topic || ''} [${d.size}] ${d.payloadHex || ''}`);
      } else {
        line(name, `${fmtTime(d.time)} ${d.serverId} ${d.remote || ''} ${d.clientId || ''} ${d.reason || ''}`);
      }
    }, (err) => { if (ctx.alive) { line('end', err ? err.message : t('net.debug.ended')); end(); } });
  });
  ctx.onLeave(() => { if (stop) stop(); });
  return page(t('net.debug'), [nodeSel, toggle, button(t('common.clear'), () => out.replaceChildren())], out);
}
