// 设备接入网关: the list; 新增 opens the card picker (自定义, 视频, 云平台, 通道, 官方), then the
// manual's steps for that card (network component, protocol, the card's own configuration,
// basic info). Editing starts at the first step with the provider fixed; the protocol is
// fixed once a product refers to the gateway; the read-only callbackUrl is echoed.

import { get, post, put, listAll, session } from '../api.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, form, toast, badge, steps, kv, modal, pager, once } from '../ui.js';
import { switchState, remove } from '../actions.js';
import { statusTable } from './network.js';

add({
  'gw.title.new': ['新增设备接入网关', 'New device gateway'],
  'gw.title.edit': ['编辑设备接入网关', 'Edit device gateway'],
  'gw.pick': ['选择接入方式', 'Choose how devices connect'],
  'gw.card.custom': ['自定义设备接入', 'Custom access'],
  'gw.card.video': ['视频类设备接入', 'Video devices'],
  'gw.card.cloud': ['云平台接入', 'Cloud platforms'],
  'gw.card.channel': ['通道类设备接入', 'Channel devices'],
  'gw.card.official': ['官方接入', 'Official access'],
  'gw.provider': ['网关类型', 'Gateway type'],
  'gw.p.mqtt-server-gateway': ['MQTT直连接入', 'MQTT server'],
  'gw.p.mqtt-client-gateway': ['MQTT Broker接入', 'MQTT broker (client)'],
  'gw.p.tcp-server-gateway': ['TCP透传接入', 'TCP server'],
  'gw.p.udp-device-gateway': ['UDP接入', 'UDP'],
  'gw.p.coap-server-gateway': ['CoAP接入', 'CoAP server'],
  'gw.p.http-server-gateway': ['HTTP推送接入', 'HTTP server'],
  'gw.p.websocket-server': ['WebSocket接入', 'WebSocket server'],
  'gw.p.gb28181-2016': ['GB/T28181', 'GB/T 28181'],
  'gw.p.Ctwing': ['CTWing', 'CTWing'],
  'gw.p.OneNet': ['OneNet', 'OneNET'],
  'gw.p.modbus-tcp': ['Modbus TCP', 'Modbus TCP'],
  'gw.p.official-edge-gateway': ['JetLinks官方协议', 'JetLinks official protocol'],
  'gw.d.mqtt-server-gateway': ['设备通过MQTT服务组件直连平台', 'Devices connect to an MQTT server component'],
  'gw.d.mqtt-client-gateway': ['平台订阅第三方MQTT Broker的消息', 'The platform subscribes to another MQTT broker'],
  'gw.d.tcp-server-gateway': ['设备通过TCP连接上报', 'Devices connect over TCP'],
  'gw.d.udp-device-gateway': ['设备通过UDP报文上报', 'Devices send UDP datagrams'],
  'gw.d.coap-server-gateway': ['设备通过CoAP请求上报', 'Devices send CoAP requests'],
  'gw.d.http-server-gateway': ['设备通过HTTP请求推送', 'Devices POST over HTTP'],
  'gw.d.websocket-server': ['设备通过WebSocket连接', 'Devices connect over WebSocket'],
  'gw.d.gb28181-2016': ['摄像头、NVR通过SIP注册', 'Cameras and NVRs register over SIP'],
  'gw.d.Ctwing': ['接收电信CTWing平台推送', 'Receives CTWing pushes'],
  'gw.d.OneNet': ['接收移动OneNET平台推送', 'Receives OneNET pushes'],
  'gw.d.modbus-tcp': ['平台轮询Modbus TCP设备的点位', 'The platform polls Modbus TCP points'],
  'gw.d.official-edge-gateway': ['JetLinks官方设备，协议固定', 'JetLinks devices; the protocol is fixed'],
  'gw.step.network': ['网络组件', 'Network component'],
  'gw.step.protocol': ['消息协议', 'Message protocol'],
  'gw.step.sip': ['信令配置', 'Signalling'],
  'gw.step.cloud': ['接入配置', 'Platform settings'],
  'gw.step.modbus': ['通道配置', 'Channel settings'],
  'gw.step.basic': ['基本信息', 'Basic information'],
  'gw.network.pick': ['选择网络组件（{type}）', 'Choose a network component ({type})'],
  'gw.network.none': ['没有可用的{type}网络组件', 'No {type} network component is available'],
  'gw.network.create': ['新增网络组件', 'New network component'],
  'gw.network.optional': ['可选：不选择则不绑定网络组件', 'Optional: leave it unchosen to bind none'],
  'gw.network.inUse': ['已被其它网关使用', 'used by another gateway'],
  'gw.network.required': ['请选择网络组件', 'Choose a network component'],
  'gw.protocol.pick': ['选择消息协议（支持 {transport}）', 'Choose a protocol (supporting {transport})'],
  'gw.protocol.none': ['没有支持 {transport} 的协议', 'No protocol supports {transport}'],
  'gw.protocol.locked': ['该网关已被产品引用，不可修改协议', 'A product refers to this gateway: its protocol cannot change'],
  'gw.protocol.required': ['请选择消息协议', 'Choose a protocol'],
  'gw.provider.locked': ['已选定的网关类型不可编辑', 'The gateway type cannot change'],
  'gw.channel': ['网络组件', 'Network component'],
  'gw.protocol': ['消息协议', 'Protocol'],
  'gw.transport': ['传输协议', 'Transport'],
  'gw.status': ['状态', 'Status'],
  'gw.status.title': ['网关运行状态', 'Gateway status'],
  'gw.callbackUrl': ['接口地址', 'Callback URL'],
  'gw.callbackUrl.help': ['用于iot平台与云平台同步数据，仅回显，不可编辑', 'Where the cloud platform pushes data; shown only, not editable'],
  'gw.callbackUrl.pending': ['保存后生成', 'generated when saved'],
  'gw.created.cloud': ['网关已创建，请在云平台上配置以下接口地址', 'Gateway created: configure this callback URL on the cloud platform'],
  'gw.sip.domain': ['SIP域', 'SIP domain'],
  'gw.sip.domain.help': ['SIP域地址，通常为SIP ID的前10位', 'usually the first 10 digits of the SIP ID'],
  'gw.sip.sipId': ['SIP ID', 'SIP ID'],
  'gw.sip.sipId.help': ['SIP ID通常为16位或20位，填写规范请参见《GB/T28181-2016》', '16 or 20 digits, as GB/T 28181-2016 defines'],
  'gw.sip.host': ['SIP地址', 'SIP address'],
  'gw.sip.host.help': ['绑定到服务器上的网卡地址，绑定到所有网卡：0.0.0.0', 'the interface to bind; 0.0.0.0 binds every interface'],
  'gw.sip.port': ['SIP端口', 'SIP port'],
  'gw.sip.publicHost': ['公网Host', 'Public host'],
  'gw.sip.publicPort': ['公网端口', 'Public port'],
  'gw.sip.password': ['接入密码', 'Password'],
  'gw.sip.keepalive': ['心跳超时（秒）', 'Keepalive timeout (s)'],
  'gw.sip.keepalive.help': ['设备静默超过该时长即离线（10–3600，默认180）', 'a device silent this long goes offline (10–3600, default 180)'],
  'gw.ctwing.appKey': ['APP Key', 'APP Key'],
  'gw.ctwing.appKey.help': ['CTWing平台中三方应用的唯一身份标识', 'the third-party application\'s id on CTWing'],
  'gw.ctwing.appSecret': ['appSecret', 'appSecret'],
  'gw.ctwing.appSecret.help': ['CTWing平台中三方应用的唯一身份认证秘钥', 'the third-party application\'s secret on CTWing'],
  'gw.onenet.apiKey': ['API key', 'API key'],
  'gw.onenet.apiKey.help': ['OneNet平台中具体产品的Key', 'the product\'s key on OneNET'],
  'gw.onenet.notifyToken': ['通知Token', 'Notify token'],
  'gw.onenet.notifyToken.help': ['用于验证请求是否来自OneNET', 'proves a push comes from OneNET'],
  'gw.onenet.aesKey': ['aesKey', 'aesKey'],
  'gw.onenet.aesKey.help': ['OneNet端生成的消息加密key（16位：OneNET Studio；43位：旧平台）', 'the message key OneNET generated (16 characters: OneNET Studio; 43: the older platform)'],
  'gw.modbus.host': ['设备地址', 'Device host'],
  'gw.modbus.port': ['端口', 'Port'],
  'gw.modbus.unitId': ['从站ID', 'Unit id'],
  'gw.modbus.poll': ['轮询间隔（毫秒）', 'Poll interval (ms)'],
  'gw.modbus.deviceId': ['设备ID', 'Device id'],
  'gw.modbus.deviceId.help': ['点位作为该设备的属性上报（可在网关之后创建）', 'the points become this device\'s properties (it may be created later)'],
  'gw.modbus.points': ['点位', 'Points'],
  'gw.modbus.addPoint': ['新增点位', 'Add point'],
  'gw.modbus.property': ['属性', 'Property'],
  'gw.modbus.area': ['区域', 'Area'],
  'gw.modbus.address': ['地址', 'Address'],
  'gw.modbus.dataType': ['数据类型', 'Data type'],
  'gw.modbus.scale': ['缩放', 'Scale'],
  'gw.keepOnline': ['保持在线（秒）', 'Keep online (s)'],
  'gw.keepOnline.help': ['设备静默超过该时长视为离线（默认600）', 'a silent device counts as offline after this long (default 600)'],
});

const PATH = '/api/v1/gateways';
const enc = encodeURIComponent;

// PROVIDERS: each provider's card, the component type it needs (and whether optional),
// its transport, whether it takes a protocol, and the configuration step it adds.
const PROVIDERS = [
  { name: 'mqtt-server-gateway', card: 'custom', component: 'MQTT_SERVER', transport: 'MQTT', protocol: true },
  { name: 'mqtt-client-gateway', card: 'custom', component: 'MQTT_CLIENT', transport: 'MQTT', protocol: true },
  { name: 'tcp-server-gateway', card: 'custom', component: 'TCP_SERVER', transport: 'TCP', protocol: true },
  { name: 'udp-device-gateway', card: 'custom', component: 'UDP', transport: 'UDP', protocol: true },
  { name: 'coap-server-gateway', card: 'custom', component: 'COAP_SERVER', transport: 'CoAP', protocol: true },
  { name: 'http-server-gateway', card: 'custom', component: 'HTTP_SERVER', transport: 'HTTP', protocol: true },
  { name: 'websocket-server', card: 'custom', component: 'WEB_SOCKET_SERVER', transport: 'WebSocket', protocol: true },
  { name: 'gb28181-2016', card: 'video', transport: 'SIP', step: 'sip' },
  { name: 'Ctwing', card: 'cloud', transport: 'HTTP', protocol: true, step: 'cloud' },
  { name: 'OneNet', card: 'cloud', transport: 'HTTP', protocol: true, step: 'cloud' },
  { name: 'modbus-tcp', card: 'channel', transport: 'ModbusTCP', step: 'modbus' },
  { name: 'official-edge-gateway', card: 'official', component: 'MQTT_SERVER', optional: true, transport: 'MQTT', fixedProtocol: 'official' },
];
const CARDS = ['custom', 'video', 'cloud', 'channel', 'official'];
const provider = (name) => PROVIDERS.find((p) => p.name === name);

export const routes = [
  { path: '/gateways', menu: 'gateways', title: 'menu.gateways', render: list },
  { path: '/gateways/new', menu: 'gateways', title: 'gw.title.new', render: pick },
  { path: '/gateways/new/:provider', menu: 'gateways', title: 'gw.title.new', render: (ctx) => wizard(ctx, null, ctx.params.provider) },
  { path: '/gateways/:id/edit', menu: 'gateways', title: 'gw.title.edit', render: (ctx) => wizard(ctx, ctx.params.id) },
];

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const filters = { q: ctx.query.q || '', provider: ctx.query.provider || '', state: ctx.query.state || '' };
  const [r, components] = await Promise.all([
    get(PATH, Object.assign({ page: pageNo, pageSize: 20, sort: '-createdAt' }, filters)),
    listAll('/api/v1/network-components'),
  ]);
  const names = Object.fromEntries(components.map((c) => [c.id, c.name]));
  const q = h('input', { placeholder: t('common.name'), value: filters.q });
  const prov = h('select', null, h('option', { value: '' }, t('gw.provider')), PROVIDERS.map((p) => h('option', { value: p.name }, t('gw.p.' + p.name))));
  prov.value = filters.provider;
  const state = h('select', null, h('option', { value: '' }, t('common.state')), ['enabled', 'disabled'].map((v) => h('option', { value: v }, t('state.' + v))));
  state.value = filters.state;
  const find = () => ctx.go(`/gateways?q=${enc(q.value.trim())}&provider=${enc(prov.value)}&state=${state.value}`);
  q.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const admin = session.isAdmin;
  return page(t('menu.gateways'), admin ? [button(t('common.add'), () => ctx.go('/gateways/new'), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, q, prov, state, button(t('common.search'), find), button(t('common.reset'), () => ctx.go('/gateways'))),
    table([
      { title: t('common.name'), key: 'name' },
      { title: t('gw.provider'), render: (g) => t('gw.p.' + g.provider) },
      { title: t('gw.channel'), render: (g) => g.channelId ? (names[g.channelId] || g.channelId) : '-' },
      { title: t('gw.protocol'), render: (g) => g.protocol || '-' },
      { title: t('gw.transport'), render: (g) => g.transport || '-' },
      { title: t('common.state'), render: (g) => badge(g.state) },
      { title: t('common.description'), render: (g) => g.description || '-' },
      { title: t('common.actions'), render: (g) => h('div', { class: 'row-actions' },
        button(t('gw.status'), () => showStatus(g), 'btn-link status'),
        admin ? [
          button(t('common.edit'), () => ctx.go(`/gateways/${enc(g.id)}/edit`), 'btn-link edit'),
          button(t(g.state === 'enabled' ? 'common.disable' : 'common.enable'), async () => { if (await switchState(PATH, g)) ctx.rerender(); }, 'btn-link toggle'),
          button(t('common.delete'), async () => { if (await remove(PATH, g)) ctx.rerender(); }, 'btn-link danger delete'),
        ] : null) },
    ], r.items, { rowId: (g) => g.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/gateways?q=${enc(filters.q)}&provider=${enc(filters.provider)}&state=${filters.state}&page=${p}`)));
}

// showStatus opens the gateway's per-node status, refreshed while open.
function showStatus(g) {
  const host = h('div', null, t('common.loading'));
  let timer = null;
  const load = async () => {
    try { fill(host, statusTable((await get(`${PATH}/${enc(g.id)}/status`)).items, false)); } catch (err) { fill(host, h('div', { class: 'form-error' }, err.message)); }
  };
  load();
  timer = setInterval(load, 2000);
  modal(t('gw.status.title') + ' · ' + g.name, host, [], { wide: true, onClose: () => clearInterval(timer) });
}

// pick is the card picker: the manual's five kinds, each with its providers.
function pick(ctx) {
  return page(t('gw.title.new'), [button(t('common.back'), () => ctx.go('/gateways'))],
    h('p', { class: 'muted' }, t('gw.pick')),
    CARDS.map((card) => h('div', { class: 'card-group', dataset: { card } },
      h('div', { class: 'card-group-title' }, t('gw.card.' + card)),
      h('div', { class: 'cards' }, PROVIDERS.filter((p) => p.card === card).map((p) => h('button', {
        type: 'button', class: 'card', dataset: { provider: p.name }, onclick: () => ctx.go('/gateways/new/' + enc(p.name)),
      }, h('div', { class: 'card-title' }, t('gw.p.' + p.name)), h('div', { class: 'card-text' }, t('gw.d.' + p.name))))))));
}

// stepsOf lists a provider's steps in the manual's order.
function stepsOf(p) {
  const out = [];
  if (p.component) out.push('network');
  if (p.step === 'sip') out.push('sip');
  if (p.step === 'cloud') out.push('cloud');
  if (p.protocol) out.push('protocol');
  if (p.step === 'modbus') out.push('modbus');
  out.push('basic');
  return out;
}

async function wizard(ctx, id, providerName) {
  const current = id ? await get(PATH + '/' + enc(id)) : null;
  const p = provider(current ? current.provider : providerName);
  if (!p) { ctx.go('/gateways/new'); return h('div'); }
  const [components, protocols, gateways, referenced, nodes] = await Promise.all([
    p.component ? listAll('/api/v1/network-components', { type: p.component }) : [],
    p.protocol ? listAll('/api/v1/protocols') : [],
    p.component ? listAll(PATH) : [],
    current ? get('/api/v1/products', { gatewayId: current.id, pageSize: 1 }).then((r) => r.total > 0) : false,
    p.step === 'sip' ? get('/api/v1/cluster/nodes').then((r) => (r.items || []).map((n) => n.id).sort()) : [],
  ]);
  const state = {
    channelId: current ? current.channelId || '' : '',
    protocol: current ? current.protocol || '' : (p.fixedProtocol || ''),
    configuration: JSON.parse(JSON.stringify((current && current.configuration) || {})),
  };
  const names = stepsOf(p);
  let at = 0;
  const host = h('div', { class: 'wizard' });
  const forms = {};

  // The network step: pick one component of the provider's type; a component another
  // gateway uses is shown but not offered (only MQTT_SERVER may serve several).
  const usedBy = {};
  for (const g of gateways) if (g.channelId && (!current || g.id !== current.id)) usedBy[g.channelId] = g.name;
  const networkStep = () => {
    const choices = components.map((c) => {
      const taken = p.component !== 'MQTT_SERVER' && usedBy[c.id];
      return h('button', {
        type: 'button', class: 'card' + (state.channelId === c.id ? ' selected' : ''), disabled: !!taken, dataset: { component: c.id },
        onclick: () => { state.channelId = state.channelId === c.id && p.optional ? '' : c.id; paint(); },
      }, h('div', { class: 'card-title' }, c.name, ' ', badge(c.state)),
      h('div', { class: 'card-text' }, t('net.type.' + c.type)), taken ? h('div', { class: 'card-text' }, t('gw.network.inUse') + ': ' + taken) : null);
    });
    return h('div', null,
      h('p', { class: 'muted' }, t('gw.network.pick', { type: t('net.type.' + p.component) }), p.optional ? ' · ' + t('gw.network.optional') : ''),
      choices.length ? h('div', { class: 'pick-list' }, choices) : h('p', { class: 'muted' }, t('gw.network.none', { type: t('net.type.' + p.component) })),
      h('a', { href: '#/network/new' }, t('gw.network.create')));
  };
  const protocolStep = () => {
    const fits = protocols.filter((x) => x.id === 'official' || (x.manifest && (x.manifest.transports || []).includes(p.transport)) || x.type === 'local');
    const locked = current && referenced;
    return h('div', null,
      h('p', { class: 'muted' }, t('gw.protocol.pick', { transport: p.transport })),
      locked ? h('div', { class: 'form-error protocol-locked' }, t('gw.protocol.locked')) : null,
      fits.length ? h('div', { class: 'pick-list' }, fits.map((x) => h('button', {
        type: 'button', class: 'card' + (state.protocol === x.id ? ' selected' : ''), disabled: locked && state.protocol !== x.id, dataset: { protocol: x.id },
        onclick: () => { if (!locked) { state.protocol = x.id; paint(); } },
      }, h('div', { class: 'card-title' }, x.name), h('div', { class: 'card-text' }, t('protocols.type.' + x.type) + (x.manifest && x.manifest.version ? ' · v' + x.manifest.version : '')))))
        : h('p', { class: 'muted' }, t('gw.protocol.none', { transport: p.transport })));
  };
  const callbackRow = () => ({ name: 'callbackUrl', label: t('gw.callbackUrl'), readonly: true, help: t('gw.callbackUrl.help'), placeholder: t('gw.callbackUrl.pending') });
  const configForm = (kind) => {
    if (forms[kind]) return forms[kind];
    let fields;
    const init = { configuration: state.configuration, callbackUrl: current ? current.callbackUrl : '' };
    if (kind === 'sip') {
      fields = [
        { name: 'configuration.domain', label: t('gw.sip.domain'), help: t('gw.sip.domain.help'), required: true },
        { name: 'configuration.sipId', label: t('gw.sip.sipId'), help: t('gw.sip.sipId.help'), required: true },
        { name: 'configuration.password', label: t('gw.sip.password'), kind: 'password', secret: !!current },
        { name: 'configuration.keepaliveTimeoutSeconds', label: t('gw.sip.keepalive'), kind: 'number', help: t('gw.sip.keepalive.help') },
        { name: 'configuration.shareCluster', label: t('net.cluster'), kind: 'select', options: [['true', t('net.shared')], ['false', t('net.independent')]] },
        { name: 'configuration.host', label: t('gw.sip.host'), placeholder: '0.0.0.0', help: t('gw.sip.host.help'), show: (v) => v.configuration.shareCluster !== 'false' },
        { name: 'configuration.port', label: t('gw.sip.port'), kind: 'number', show: (v) => v.configuration.shareCluster !== 'false' },
        { name: 'configuration.publicHost', label: t('gw.sip.publicHost'), show: (v) => v.configuration.shareCluster !== 'false' },
        { name: 'configuration.publicPort', label: t('gw.sip.publicPort'), kind: 'number', show: (v) => v.configuration.shareCluster !== 'false' },
      ];
      const byNode = Object.fromEntries((state.configuration.cluster || []).map((n) => [n.serverId, n.configuration]));
      nodes.forEach((node, i) => {
        const show = (v) => v.configuration.shareCluster === 'false';
        init.configuration = Object.assign({}, init.configuration);
        fields.push({ kind: 'section', label: t('net.nodeOn', { node }) });
        for (const [k, label, kindOf] of [['host', 'gw.sip.host', 'text'], ['port', 'gw.sip.port', 'number'], ['publicHost', 'gw.sip.publicHost', 'text'], ['publicPort', 'gw.sip.publicPort', 'number']]) {
          fields.push({ name: `configuration.cluster[${i}].configuration.${k}`, label: t(label), kind: kindOf, show });
        }
        fields.push({ name: `configuration.cluster[${i}].serverId`, label: t('common.node'), readonly: true, show });
        init.configuration.cluster = init.configuration.cluster ? init.configuration.cluster.slice() : [];
        init.configuration.cluster[i] = { serverId: node, configuration: byNode[node] || {} };
      });
      init.configuration.shareCluster = String(state.configuration.shareCluster !== false);
      // The per-node headings belong to 独立配置 only, like the rows under them.
      const f = form(fields, init);
      const sync = () => { for (const el of f.el.querySelectorAll('.form-section')) el.hidden = f.get('configuration.shareCluster') === 'true'; };
      f.field('configuration.shareCluster').input.el.addEventListener('change', sync);
      sync();
      forms[kind] = f;
      return f;
    } else if (kind === 'cloud' && p.name === 'Ctwing') {
      fields = [callbackRow(),
        { name: 'configuration.appKey', label: t('gw.ctwing.appKey'), help: t('gw.ctwing.appKey.help') },
        { name: 'configuration.appSecret', label: t('gw.ctwing.appSecret'), kind: 'password', secret: !!current, help: t('gw.ctwing.appSecret.help') }];
    } else if (kind === 'cloud') {
      fields = [callbackRow(),
        { name: 'configuration.apiKey', label: t('gw.onenet.apiKey'), kind: 'password', secret: !!current, help: t('gw.onenet.apiKey.help') },
        { name: 'configuration.notifyToken', label: t('gw.onenet.notifyToken'), kind: 'password', secret: !!current, help: t('gw.onenet.notifyToken.help'), required: !current },
        { name: 'configuration.aesKey', label: t('gw.onenet.aesKey'), kind: 'password', secret: !!current, help: t('gw.onenet.aesKey.help') }];
    } else if (kind === 'modbus') {
      fields = [
        { name: 'configuration.host', label: t('gw.modbus.host'), required: true },
        { name: 'configuration.port', label: t('gw.modbus.port'), kind: 'number', placeholder: '502' },
        { name: 'configuration.unitId', label: t('gw.modbus.unitId'), kind: 'number' },
        { name: 'configuration.pollIntervalMs', label: t('gw.modbus.poll'), kind: 'number', placeholder: '1000' },
        { name: 'configuration.deviceId', label: t('gw.modbus.deviceId'), help: t('gw.modbus.deviceId.help'), required: true },
      ];
    } else {
      const extra = [];
      if (['udp-device-gateway', 'coap-server-gateway', 'http-server-gateway'].includes(p.name)) {
        extra.push({ name: 'configuration.keepOnlineSeconds', label: t('gw.keepOnline'), kind: 'number', help: t('gw.keepOnline.help') });
      }
      fields = [{ name: 'name', label: t('common.name'), required: true }, ...extra,
        { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 }];
      init.name = current ? current.name : '';
      init.description = current ? current.description : '';
    }
    forms[kind] = form(fields, init);
    return forms[kind];
  };

  // Modbus points: rows of property, name, area, address, dataType, scale.
  let points = (state.configuration.points || []).map((x) => Object.assign({}, x));
  const pointsHost = h('div', { class: 'points' });
  const pointErrors = {};
  // syncPoints reads what is typed in the rows (a value set without a change event too).
  const syncPoints = () => {
    for (const el of pointsHost.querySelectorAll('[data-point][data-key]')) {
      const pt = points[Number(el.dataset.point)];
      if (!pt) continue;
      const key = el.dataset.key;
      pt[key] = el.type === 'number' ? (el.value.trim() === '' ? undefined : Number(el.value)) : el.value;
    }
  };
  const paintPoints = () => {
    const cell = (i, key, el) => {
      const path = `configuration.points[${i}].${key}`;
      return h('td', { class: pointErrors[path] ? 'has-error' : null }, el, pointErrors[path] ? h('div', { class: 'field-error', dataset: { field: path } }, pointErrors[path]) : null);
    };
    const input = (i, key, type = 'text') => {
      const el = h('input', { type, value: points[i][key] ?? '', dataset: { point: i, key } });
      el.addEventListener('change', () => { points[i][key] = type === 'number' ? (el.value === '' ? undefined : Number(el.value)) : el.value; });
      return el;
    };
    const select = (i, key, options) => {
      const el = h('select', { dataset: { point: i, key }, style: { minWidth: '7.5em' } }, options.map((o) => h('option', { value: o }, o)));
      el.value = points[i][key] || options[0];
      points[i][key] = el.value;
      el.addEventListener('change', () => { points[i][key] = el.value; });
      return el;
    };
    fill(pointsHost, h('h3', { class: 'form-section' }, t('gw.modbus.points')),
      h('table', { class: 'table' }, h('thead', null, h('tr', null, ['gw.modbus.property', 'common.name', 'gw.modbus.area', 'gw.modbus.address', 'gw.modbus.dataType', 'gw.modbus.scale', 'common.actions'].map((k) => h('th', null, t(k))))),
        h('tbody', null, points.map((_, i) => h('tr', { dataset: { point: i } },
          cell(i, 'property', input(i, 'property')), cell(i, 'name', input(i, 'name')),
          cell(i, 'area', select(i, 'area', ['holding', 'input', 'coil', 'discrete'])), cell(i, 'address', input(i, 'address', 'number')),
          cell(i, 'dataType', select(i, 'dataType', ['int16', 'uint16', 'int32', 'uint32', 'float32', 'int64', 'uint64', 'float64', 'bool'])),
          cell(i, 'scale', input(i, 'scale', 'number')),
          h('td', null, button(t('common.delete'), () => { syncPoints(); points.splice(i, 1); paintPoints(); }, 'btn-link danger delete-point')))))),
      button(t('gw.modbus.addPoint'), () => { syncPoints(); points.push({ area: 'holding', dataType: 'int16', address: 0 }); paintPoints(); }, 'btn-small add-point'));
  };

  const stepError = h('div', { class: 'form-error', role: 'alert', hidden: true });
  let clusterRows = [];
  function body() {
    const basic = configForm('basic').value();
    const b = { name: basic.name, description: basic.description, provider: p.name };
    if (p.component) b.channelId = state.channelId || undefined;
    if (p.protocol || p.fixedProtocol) b.protocol = state.protocol || undefined;
    // On edit, the stored keys that no step shows (binaryDeviceId, apiUrl, …) are sent
    // back as they are: a PUT replaces the configuration.
    const shown = new Set();
    for (const n of names) {
      if (n === 'network' || n === 'protocol') continue;
      for (const name of configForm(n).names()) if (name.startsWith('configuration.')) shown.add(name.slice('configuration.'.length).split(/[.[]/)[0]);
    }
    if (p.step === 'modbus') shown.add('points');
    let cfg = {};
    for (const [k, v] of Object.entries((current && current.configuration) || {})) if (!shown.has(k)) cfg[k] = v;
    Object.assign(cfg, basic.configuration || {});
    if (p.step === 'sip') {
      const v = configForm('sip').value().configuration || {};
      const shared = v.shareCluster !== 'false';
      cfg = Object.assign(cfg, v, { shareCluster: shared });
      clusterRows = [];
      if (shared) delete cfg.cluster;
      else {
        // serverId is a read-only field (value() leaves it out): each row is its node's. A
        // row left empty does not run the gateway; clusterRows maps cluster[k] to its row.
        cfg.cluster = [];
        nodes.forEach((node, i) => {
          const c = ((v.cluster || [])[i] || {}).configuration || {};
          if (!Object.keys(c).length) return;
          clusterRows.push(i);
          cfg.cluster.push({ serverId: node, configuration: c });
        });
        for (const k of ['host', 'port', 'publicHost', 'publicPort']) delete cfg[k];
      }
    } else if (p.step === 'cloud' || p.step === 'modbus') {
      Object.assign(cfg, configForm(p.step).value().configuration || {});
      if (p.step === 'modbus') { syncPoints(); cfg.points = points; }
    }
    // Always on edit, even empty: a PUT without configuration would not keep its secrets.
    if (Object.keys(cfg).length || current) b.configuration = cfg;
    return b;
  }

  // showErrors puts each message on the step that owns its field and opens the first
  // such step.
  function showErrors(err) {
    const owner = (path) => {
      if (path === 'channelId') return 'network';
      if (path === 'protocol') return 'protocol';
      if (path.startsWith('configuration.points')) return 'modbus';
      if (path.startsWith('configuration.') && p.step && !path.startsWith('configuration.keepOnlineSeconds')) return p.step;
      return 'basic';
    };
    const byStep = {};
    for (const [raw, msg] of Object.entries(err.fields || {})) {
      // cluster[k] of the request is the k-th filled node row.
      const path = raw.replace(/^configuration\.cluster\[(\d+)\]/, (m, k) => (clusterRows[Number(k)] !== undefined ? `configuration.cluster[${clusterRows[Number(k)]}]` : m));
      (byStep[owner(path)] = byStep[owner(path)] || {})[path] = msg;
    }
    // A point's message goes in its row; the rest of the step's in its form.
    for (const k of Object.keys(pointErrors)) delete pointErrors[k];
    for (const [path, msg] of Object.entries(byStep.modbus || {})) {
      if (!/^configuration\.points\[\d+\]\./.test(path)) continue;
      pointErrors[path] = msg;
      delete byStep.modbus[path];
    }
    const pointsOnly = byStep.modbus && !Object.keys(byStep.modbus).length;
    const sub = (fields) => Object.assign(Object.create(err), { fields });
    for (const [kind, f] of Object.entries(forms)) {
      if (byStep[kind] && !(kind === 'modbus' && pointsOnly)) f.showErrors(sub(byStep[kind])); else f.clearErrors();
    }
    const first = names.find((n) => byStep[n]);
    stepMessages = {};
    for (const n of ['network', 'protocol']) if (byStep[n]) stepMessages[n] = Object.values(byStep[n]).join('; ');
    if (!first) { at = names.length - 1; paint(); forms.basic.showErrors(sub({})); return; }
    at = names.indexOf(first);
    paint();
  }
  let stepMessages = {};

  const save = once(async () => {
    try {
      const saved = current ? await put(PATH + '/' + enc(current.id), body()) : await post(PATH, body());
      toast(t('common.saved'));
      if (!current && saved.callbackUrl) {
        const m = modal(t('gw.created.cloud'), kv([[t('gw.callbackUrl'), h('span', { class: 'mono callback-url' }, saved.callbackUrl)]]),
          [button(t('common.ok'), () => m.close(), 'btn-primary')], { onClose: () => ctx.go('/gateways') });
        return;
      }
      ctx.go('/gateways');
    } catch (err) {
      showErrors(err);
    }
  });

  const next = () => {
    const name = names[at];
    stepError.hidden = true;
    if (name === 'network' && !p.optional && !state.channelId) { stepError.hidden = false; stepError.textContent = t('gw.network.required'); return; }
    if (name === 'protocol' && !state.protocol) { stepError.hidden = false; stepError.textContent = t('gw.protocol.required'); return; }
    at++;
    paint();
  };

  function paint() {
    const name = names[at];
    let content;
    if (name === 'network') content = networkStep();
    else if (name === 'protocol') content = protocolStep();
    else if (name === 'modbus') { content = h('div', null, configForm('modbus').el, pointsHost); paintPoints(); } else content = configForm(name === 'basic' ? 'basic' : name).el;
    const msg = stepMessages[name];
    const last = at === names.length - 1;
    fill(host,
      steps(names.map((n) => t('gw.step.' + n)), at),
      h('div', { class: 'wizard-meta' }, kv([[t('gw.provider'), h('span', null, t('gw.p.' + p.name), current ? h('span', { class: 'muted' }, ' · ' + t('gw.provider.locked')) : null)]])),
      msg ? h('div', { class: 'form-error' }, msg) : null,
      stepError,
      h('div', { class: 'wizard-step', dataset: { step: name } }, content),
      h('div', { class: 'form-foot' },
        at > 0 ? button(t('common.prev'), () => { at--; paint(); }, 'prev') : button(t('common.cancel'), () => ctx.go(current ? '/gateways' : '/gateways/new'), 'cancel'),
        last ? button(t('common.save'), save, 'btn-primary save') : button(t('common.next'), next, 'btn-primary next')));
  }
  paint();
  return page(t(current ? 'gw.title.edit' : 'gw.title.new'), [button(t('common.back'), () => ctx.go('/gateways'))], host);
}
