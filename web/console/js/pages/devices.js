// 设备: the registered devices with their session fields (state, the node holding the
// session, the latest properties), refreshed while shown; a device's page with its
// properties, the downlinks (read, write, call a function), the live message stream and,
// for GB/T 28181 cameras, their channels and video play.

import { get, post, put, del, listAll, stream, session, query } from '../api.js';
import { remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, form, formModal, every, confirm, toast, failed, fmtTime, kv, pager, badge } from '../ui.js';

add({
  'devices.detail.title': ['设备详情', 'Device'],
  'devices.title.new': ['新增设备', 'New device'],
  'devices.title.edit': ['编辑设备', 'Edit device'],
  'devices.id': ['设备ID', 'Device ID'],
  'devices.id.help': ['可选：留空则自动生成；保存后不可修改', 'Optional: generated when empty; it cannot change once saved'],
  'devices.name': ['设备名称', 'Device name'],
  'devices.product': ['所属产品', 'Product'],
  'devices.product.pick': ['请选择产品', 'Choose a product'],
  'devices.product.all': ['全部产品', 'All products'],
  'devices.state.all': ['全部状态', 'All states'],
  'devices.search': ['设备名称', 'Device name'],
  'devices.serverId': ['节点', 'Node'],
  'devices.onlineAt': ['上线时间', 'Online since'],
  'devices.offlineAt': ['离线时间', 'Offline since'],
  'devices.lastMessageAt': ['最近消息', 'Last message'],
  'devices.firmwareVersion': ['固件版本', 'Firmware version'],
  'devices.properties': ['最新属性', 'Latest properties'],
  'devices.prop.name': ['属性', 'Property'],
  'devices.prop.value': ['值', 'Value'],
  'devices.prop.at': ['上报时间', 'Reported at'],
  'devices.prop.none': ['尚未上报属性', 'No property reported yet'],
  'devices.more': ['等 {n} 项', '+{n} more'],
  'devices.refreshFailed': ['刷新失败：{msg}', 'Refresh failed: {msg}'],
  'devices.missing': ['保存其属性的节点未应答：{nodes}；显示的属性可能不是最新的', 'The node holding its properties did not answer: {nodes}; the properties shown may be out of date'],
  'devices.autoRefresh': ['每 5 秒自动刷新', 'Refreshed every 5 s'],
  'devices.disconnect': ['断开连接', 'Disconnect'],
  'devices.disconnect.confirm': ['确认断开设备「{name}」的连接？设备可能会重新连接。', 'Disconnect “{name}”? The device may connect again.'],
  'devices.disconnected': ['已断开连接', 'Disconnected'],
  'devices.tools': ['设备调试', 'Device tools'],
  'devices.tools.timeout': ['超时时间', 'Timeout'],
  'devices.tools.read': ['读取属性', 'Read properties'],
  'devices.tools.read.names': ['属性名，多个用逗号分隔', 'Property names, comma separated'],
  'devices.tools.read.empty': ['请填写至少一个属性名', 'Name at least one property'],
  'devices.tools.write': ['设置属性', 'Write properties'],
  'devices.tools.write.help': ['JSON 对象，例如 {"temp": 1}', 'A JSON object, e.g. {"temp": 1}'],
  'devices.tools.invoke': ['调用功能', 'Call a function'],
  'devices.tools.functionId': ['功能ID', 'Function id'],
  'devices.tools.functionId.empty': ['请填写功能ID', 'Give the function id'],
  'devices.tools.inputs': ['输入参数（JSON 对象）', 'Inputs (a JSON object)'],
  'devices.tools.send': ['发送', 'Send'],
  'devices.tools.badJson': ['不是合法的 JSON 对象：{msg}', 'Not a JSON object: {msg}'],
  'devices.tools.waiting': ['等待设备应答…', 'Waiting for the device…'],
  'devices.tools.result': ['结果', 'Result'],
  'devices.stream.title': ['实时消息', 'Live messages'],
  'devices.stream.pause': ['暂停', 'Pause'],
  'devices.stream.resume': ['继续', 'Resume'],
  'devices.stream.connecting': ['连接中…', 'Connecting…'],
  'devices.stream.ready': ['已连接，正在跟随节点：{nodes}', 'Following on nodes: {nodes}'],
  'devices.stream.paused': ['已暂停，{n} 条消息待显示', 'Paused, {n} messages waiting'],
  'devices.stream.dropped': ['丢失 {n} 条消息（显示太慢）', '{n} messages lost (shown too slowly)'],
  'devices.stream.ended': ['消息流已结束：{msg}', 'The stream ended: {msg}'],
  'devices.stream.closed': ['连接已关闭', 'the connection closed'],
  'devices.stream.reconnect': ['重新连接', 'Reconnect'],
  'devices.stream.empty': ['等待设备消息…', 'Waiting for the device’s messages…'],
  'devices.dir.up': ['上行', 'up'],
  'devices.dir.down': ['下行', 'down'],
  'devices.video': ['视频通道', 'Video channels'],
  'devices.video.channelId': ['通道ID', 'Channel id'],
  'devices.video.manufacturer': ['厂商', 'Manufacturer'],
  'devices.video.model': ['型号', 'Model'],
  'devices.video.status': ['状态', 'Status'],
  'devices.video.parentId': ['父设备', 'Parent'],
  'devices.video.none': ['暂无通道（设备离线或尚未上报目录）', 'No channels (the device is offline or has not sent its catalog)'],
  'devices.video.play': ['播放', 'Play'],
  'devices.video.stop': ['停止', 'Stop'],
  'devices.video.stopConfirm': ['确认停止通道「{name}」的视频流？', 'Stop the stream of channel “{name}”?'],
  'devices.video.stopped': ['已停止', 'Stopped'],
  'devices.video.starting': ['正在请求视频流…', 'Asking for the stream…'],
  'devices.video.streamId': ['流ID', 'Stream id'],
  'devices.video.mediaServer': ['流媒体服务', 'Media server'],
  'devices.video.ssrc': ['SSRC', 'SSRC'],
  'devices.video.copy': ['复制', 'Copy'],
  'devices.video.copied': ['已复制', 'Copied'],
  'devices.video.open': ['打开', 'Open'],
});

const PATH = '/api/v1/devices';
const PAGE_SIZE = 20;
const REFRESH_MS = 5000;
const STREAM_LINES = 500;
const STATES = ['online', 'offline', 'notActive'];

export const routes = [
  { path: '/devices', menu: 'devices', title: 'menu.devices', render: list },
  { path: '/devices/:id', menu: 'devices', title: 'devices.detail.title', render: detail },
];

const enc = encodeURIComponent;

// short shows a property value compactly.
function short(v, max = 32) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

function compactProps(props) {
  const entries = Object.entries(props || {});
  if (!entries.length) return '-';
  const shown = entries.slice(0, 3).map(([k, v]) => `${k}=${short(v)}`).join('  ');
  const more = entries.length > 3 ? ' ' + t('devices.more', { n: entries.length - 3 }) : '';
  return h('span', { class: 'mono props-compact', title: JSON.stringify(props) }, shown + more);
}

function nodeNames(missing) {
  return (missing || []).map((m) => (m && typeof m === 'object' ? m.serverId || JSON.stringify(m) : String(m)));
}

// --- the list ---

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const filters = { state: ctx.query.state || '', productId: ctx.query.productId || '', q: ctx.query.q || '' };
  const fetchPage = () => get(PATH, Object.assign({ page: pageNo, pageSize: PAGE_SIZE, sort: '-createdAt' }, filters));
  const [products, first] = await Promise.all([listAll('/api/v1/products'), fetchPage()]);
  const admin = session.isAdmin;

  const goWith = (over) => {
    const f = Object.assign({}, filters, over);
    ctx.go('/devices' + query({ state: f.state, productId: f.productId, q: f.q, page: f.page }));
  };
  const stateSel = h('select', { class: 'filter-state', onchange: (e) => goWith({ state: e.target.value }) },
    h('option', { value: '' }, t('devices.state.all')),
    STATES.map((s) => h('option', { value: s }, t('state.' + s))));
  stateSel.value = filters.state;
  const productSel = h('select', { class: 'filter-product', onchange: (e) => goWith({ productId: e.target.value }) },
    h('option', { value: '' }, t('devices.product.all')),
    products.map((p) => h('option', { value: p.id }, `${p.name} (${p.id})`)));
  productSel.value = filters.productId;
  const search = h('input', { placeholder: t('devices.search'), value: filters.q, class: 'search' });
  const find = () => goWith({ q: search.value.trim() });
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });

  const columns = [
    { title: t('devices.id'), render: (d) => h('a', { href: '#/devices/' + enc(d.id), class: 'device-link mono' }, d.id) },
    { title: t('devices.name'), key: 'name' },
    { title: t('devices.product'), render: (d) => d.productId || '-' },
    { title: t('common.state'), render: (d) => badge(d.state) },
    { title: t('devices.serverId'), render: (d) => d.serverId || '-' },
    { title: t('devices.lastMessageAt'), render: (d) => fmtTime(d.lastMessageAt) },
    { title: t('devices.properties'), class: 'col-props', render: (d) => compactProps(d.properties) },
  ];
  if (admin) {
    columns.push({ title: t('common.actions'), render: (d) => h('div', { class: 'row-actions' },
      button(t('common.edit'), () => editor(ctx, d, products), 'btn-link edit'),
      button(t('common.delete'), async () => { if (await remove(PATH, d)) ctx.rerender(); }, 'btn-link danger delete')) });
  }

  const body = h('div', { class: 'devices-body' });
  const status = h('div', { class: 'muted refresh-status' }, t('devices.autoRefresh'));
  const paint = (r) => {
    let missing = r.missing;
    if (!missing) {
      const set = new Set();
      for (const d of r.items || []) for (const n of nodeNames(d.missing)) set.add(n);
      missing = [...set];
    }
    const names = nodeNames(missing);
    fill(body,
      names.length ? h('div', { class: 'form-error missing' }, t('common.missing', { nodes: names.join(', ') })) : null,
      table(columns, r.items || [], { rowId: (d) => d.id }),
      pager(pageNo, PAGE_SIZE, r.total, (p) => goWith({ page: p })));
  };
  paint(first);

  every(ctx, REFRESH_MS, async () => {
    const r = await fetchPage();
    if (!ctx.alive) return;
    paint(r);
    status.textContent = t('devices.autoRefresh');
  }, (err) => { status.textContent = t('devices.refreshFailed', { msg: err.message }); });

  return page(t('menu.devices'),
    admin ? [button(t('common.add'), () => editor(ctx, null, products), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, stateSel, productSel, search, button(t('common.search'), find, 'do-search'),
      button(t('common.reset'), () => ctx.go('/devices'), 'reset')),
    body, status);
}

// editor opens a device's form: current is null for a new device.
function editor(ctx, current, products) {
  const options = [['', t('devices.product.pick')]].concat(products.map((p) => [p.id, `${p.name} (${p.id})`]));
  const f = form([
    { name: 'id', label: t('devices.id'), readonly: !!current, help: current ? null : t('devices.id.help') },
    { name: 'name', label: t('devices.name'), required: true },
    // A device's product is fixed once created (the API refuses product_immutable).
    { name: 'productId', label: t('devices.product'), kind: 'select', options, required: true, disabled: !!current, omit: !!current },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 },
  ], current || {});
  formModal(t(current ? 'devices.title.edit' : 'devices.title.new'), f,
    (body) => (current ? put(PATH + '/' + enc(current.id), Object.assign(body, { productId: current.productId })) : post(PATH, body)), () => ctx.rerender());
}

// --- one device ---

async function detail(ctx) {
  const id = ctx.params.id;
  const base = PATH + '/' + enc(id);
  const admin = session.isAdmin;
  const d = await get(base);
  let product = null;
  let gateway = null;
  try {
    if (d.productId) product = await get('/api/v1/products/' + enc(d.productId));
    if (product && product.gatewayId) gateway = await get('/api/v1/gateways/' + enc(product.gatewayId));
  } catch (err) {
    failed(err);
  }
  const camera = !!gateway && gateway.provider === 'gb28181-2016';

  const info = h('div', { class: 'device-info' });
  const props = h('div', { class: 'device-props' });
  const status = h('div', { class: 'muted refresh-status' }, t('devices.autoRefresh'));
  const paint = (dev) => {
    const names = nodeNames(dev.missing);
    fill(info,
      names.length ? h('div', { class: 'form-error missing' }, t('devices.missing', { nodes: names.join(', ') })) : null,
      kv([
        [t('devices.id'), h('span', { class: 'mono' }, dev.id)],
        [t('devices.name'), dev.name || '-'],
        [t('devices.product'), product ? `${product.name} (${product.id})` : (dev.productId || '-')],
        [t('common.state'), badge(dev.state)],
        [t('devices.serverId'), dev.serverId || '-'],
        [t('devices.onlineAt'), fmtTime(dev.onlineAt)],
        [t('devices.offlineAt'), fmtTime(dev.offlineAt)],
        [t('devices.lastMessageAt'), fmtTime(dev.lastMessageAt)],
        [t('devices.firmwareVersion'), dev.firmwareVersion || '-'],
        dev.description ? [t('common.description'), dev.description] : null,
      ]));
    const rows = Object.entries(dev.properties || {}).sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => ({ name, value }));
    fill(props, table([
      { title: t('devices.prop.name'), render: (p) => h('span', { class: 'mono' }, p.name) },
      { title: t('devices.prop.value'), render: (p) => h('code', { class: 'prop-value' }, JSON.stringify(p.value)) },
      { title: t('devices.prop.at'), render: () => fmtTime(dev.propertiesAt) },
    ], rows, { rowId: (p) => p.name, empty: t('devices.prop.none') }));
    props.firstChild.classList.add('props-table');
  };
  paint(d);

  every(ctx, REFRESH_MS, async () => {
    const dev = await get(base);
    if (!ctx.alive) return;
    paint(dev);
    status.textContent = t('devices.autoRefresh');
  }, (err) => { status.textContent = t('devices.refreshFailed', { msg: err.message }); });

  const actions = [button(t('common.back'), () => ctx.go('/devices'), 'back')];
  if (admin) {
    actions.push(button(t('devices.disconnect'), async () => {
      if (!await confirm(t('devices.disconnect.confirm', { name: d.name || id }), t('devices.disconnect'), true)) return;
      try { await del(base + '/session'); toast(t('devices.disconnected')); } catch (err) { failed(err); }
    }, 'btn-danger disconnect'));
  }

  return page(t('devices.detail.title'), actions,
    info,
    h('h3', null, t('devices.properties')),
    props, status,
    admin ? tools(base) : null,
    admin ? messages(ctx, base) : null,
    camera ? video(ctx, base, admin) : null);
}

// --- downlinks ---

function tools(base) {
  const timeout = h('select', { class: 'timeout' }, ['5s', '10s', '30s'].map((v) => h('option', { value: v }, v)));
  timeout.value = '10s';
  const path = (suffix) => base + suffix + query({ timeout: timeout.value });

  // run shows a downlink's answer, or its refusal (device_offline, device_timeout), in box.
  const run = async (box, send) => {
    fill(box, h('div', { class: 'muted' }, t('devices.tools.waiting')));
    box.dataset.state = 'waiting';
    delete box.dataset.code;
    try {
      const r = await send();
      box.dataset.state = r && r.success === false ? 'refused' : 'ok';
      fill(box, h('pre', { class: 'json' }, JSON.stringify(r, null, 2)));
    } catch (err) {
      refusal(box, err);
    }
  };
  const local = (box, msg) => {
    box.dataset.state = 'error';
    box.dataset.code = 'invalid_input';
    fill(box, h('div', { class: 'form-error' }, msg));
  };
  const object = (text) => {
    if (!text.trim()) return {};
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('{…}');
    return v;
  };

  const readBox = resultBox('read');
  const names = h('input', { class: 'read-names', placeholder: 'temperature, humidity' });
  const read = () => {
    const list = names.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!list.length) { local(readBox, t('devices.tools.read.empty')); return; }
    run(readBox, () => post(path('/properties/read'), { properties: list }));
  };
  names.addEventListener('keydown', (e) => { if (e.key === 'Enter') read(); });

  const writeBox = resultBox('write');
  const writeText = h('textarea', { class: 'write-props', rows: 3, spellcheck: 'false', placeholder: '{"temperature": 25}' });
  const write = () => {
    let v;
    try { v = object(writeText.value); } catch (err) { local(writeBox, t('devices.tools.badJson', { msg: err.message })); return; }
    run(writeBox, () => post(path('/properties/write'), { properties: v }));
  };

  const invokeBox = resultBox('invoke');
  const fid = h('input', { class: 'function-id', placeholder: 'reboot' });
  const inputs = h('textarea', { class: 'function-inputs', rows: 3, spellcheck: 'false', placeholder: '{"delay": 1}' });
  const invoke = () => {
    const f = fid.value.trim();
    if (!f) { local(invokeBox, t('devices.tools.functionId.empty')); return; }
    let v;
    try { v = object(inputs.value); } catch (err) { local(invokeBox, t('devices.tools.badJson', { msg: err.message })); return; }
    run(invokeBox, () => post(path('/functions/' + enc(f)), { inputs: v }));
  };

  const tool = (key, title, ...body) => h('div', { class: 'device-tool tool-' + key, dataset: { tool: key } }, h('h4', null, title), body);
  return h('div', { class: 'device-tools' },
    h('h3', null, t('devices.tools')),
    h('div', { class: 'toolbar' }, h('label', null, t('devices.tools.timeout'), ' ', timeout)),
    h('div', { class: 'device-tools-grid' },
      tool('read', t('devices.tools.read'),
        h('div', { class: 'field-help' }, t('devices.tools.read.names')), names,
        h('div', { class: 'tool-foot' }, button(t('devices.tools.send'), read, 'btn-primary do-read')), readBox),
      tool('write', t('devices.tools.write'),
        h('div', { class: 'field-help' }, t('devices.tools.write.help')), writeText,
        h('div', { class: 'tool-foot' }, button(t('devices.tools.send'), write, 'btn-primary do-write')), writeBox),
      tool('invoke', t('devices.tools.invoke'),
        h('div', { class: 'field-help' }, t('devices.tools.functionId')), fid,
        h('div', { class: 'field-help' }, t('devices.tools.inputs')), inputs,
        h('div', { class: 'tool-foot' }, button(t('devices.tools.send'), invoke, 'btn-primary do-invoke')), invokeBox)));
}

function resultBox(key) {
  return h('div', { class: 'result', dataset: { tool: key }, 'aria-live': 'polite' });
}

// refusal shows an API error in a result box: status, code and the server's message.
function refusal(box, err) {
  box.dataset.state = 'error';
  box.dataset.code = err.code || '';
  const head = [err.status ? String(err.status) : '', err.code || ''].filter(Boolean).join(' ');
  fill(box, h('div', { class: 'form-error' }, head ? h('strong', null, head + ': ') : null, err.message || String(err)));
}

// --- the live message stream ---

function messages(ctx, base) {
  const box = h('div', { class: 'stream device-stream' }, h('div', { class: 'muted stream-empty' }, t('devices.stream.empty')));
  const state = h('span', { class: 'muted stream-status' }, t('devices.stream.connecting'));
  let paused = false;
  let waiting = [];
  let stop = null;
  let empty = true;

  const line = (cls, ...children) => {
    if (empty) { box.replaceChildren(); empty = false; }
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
    box.append(h('div', { class: 'stream-line ' + cls }, children));
    while (box.childElementCount > STREAM_LINES) box.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  };
  const show = (e) => {
    const dir = e.direction === 'down' ? 'down' : 'up';
    line('stream-message dir-' + dir,
      h('span', { class: 'stream-event' }, `${fmtTime(e.time)} ${dir === 'up' ? '↑' : '↓'} ${t('devices.dir.' + dir)} ${e.type || ''}`),
      e.serverId ? h('span', { class: 'muted' }, '@' + e.serverId + ' ') : null,
      e.topic ? h('span', { class: 'stream-topic' }, e.topic + ' ') : null,
      JSON.stringify(e.message));
  };
  const pausedText = () => { state.textContent = t('devices.stream.paused', { n: waiting.length }); };

  const open = () => {
    if (stop) stop();
    state.textContent = t('devices.stream.connecting');
    stop = stream(base + '/messages', (name, data) => {
      if (!ctx.alive) return;
      if (name === 'ready') {
        const missing = nodeNames(data && data.missing);
        state.textContent = t('devices.stream.ready', { nodes: ((data && data.nodes) || []).join(', ') || '-' }) +
          (missing.length ? ' · ' + t('common.missing', { nodes: missing.join(', ') }) : '');
        return;
      }
      if (name === 'dropped') {
        line('stream-dropped', t('devices.stream.dropped', { n: (data && data.count) || 0 }));
        return;
      }
      if (name !== 'message' || !data || typeof data !== 'object') return;
      if (paused) {
        waiting.push(data);
        if (waiting.length > STREAM_LINES) waiting.shift();
        pausedText();
        return;
      }
      show(data);
    }, (err) => {
      if (!ctx.alive) return;
      state.textContent = t('devices.stream.ended', { msg: err ? err.message : t('devices.stream.closed') });
      stop = null;
    });
  };
  open();
  ctx.onLeave(() => { if (stop) stop(); stop = null; });

  const pauseBtn = button(t('devices.stream.pause'), () => {
    paused = !paused;
    pauseBtn.textContent = t(paused ? 'devices.stream.resume' : 'devices.stream.pause');
    pauseBtn.classList.toggle('active', paused);
    if (paused) { pausedText(); return; }
    const queued = waiting;
    waiting = [];
    for (const e of queued) show(e);
    state.textContent = '';
  }, 'btn-small stream-pause');
  const clearBtn = button(t('common.clear'), () => {
    box.replaceChildren(h('div', { class: 'muted stream-empty' }, t('devices.stream.empty')));
    empty = true;
    waiting = [];
    if (paused) pausedText();
  }, 'btn-small stream-clear');
  const again = button(t('devices.stream.reconnect'), open, 'btn-small stream-reconnect');
  return h('div', { class: 'device-messages' },
    h('h3', null, t('devices.stream.title')),
    h('div', { class: 'toolbar' }, pauseBtn, clearBtn, again, state),
    box);
}

// --- GB/T 28181 channels and video ---

function video(ctx, base, admin) {
  const holder = h('div', { class: 'channels' }, h('div', { class: 'muted' }, t('common.loading')));
  const playing = h('div', { class: 'video-play' });
  const load = async () => {
    try {
      const r = await get(base + '/channels');
      if (!ctx.alive) return;
      const columns = [
        { title: t('devices.video.channelId'), render: (c) => h('span', { class: 'mono' }, c.channelId) },
        { title: t('common.name'), render: (c) => c.name || '-' },
        { title: t('devices.video.manufacturer'), render: (c) => c.manufacturer || '-' },
        { title: t('devices.video.model'), render: (c) => c.model || '-' },
        { title: t('devices.video.status'), render: (c) => c.status || '-' },
        { title: t('devices.video.parentId'), render: (c) => c.parentId || '-' },
      ];
      if (admin) {
        columns.push({ title: t('common.actions'), render: (c) => h('div', { class: 'row-actions' },
          button(t('devices.video.play'), () => play(c), 'btn-link play')) });
      }
      fill(holder, table(columns, r.items || [], { rowId: (c) => c.channelId, empty: t('devices.video.none') }));
    } catch (err) {
      if (ctx.alive) fill(holder, h('div', { class: 'form-error' }, err.message));
    }
  };
  const play = async (c) => {
    playing.dataset.channel = c.channelId;
    playing.dataset.state = 'waiting';
    fill(playing, h('div', { class: 'muted' }, t('devices.video.starting')));
    try {
      const s = await post(base + '/video/play', { channelId: c.channelId });
      if (!ctx.alive) return;
      playing.dataset.state = 'ok';
      fill(playing, h('h4', null, `${c.name || c.channelId} · ${c.channelId}`),
        kv([
          [t('devices.video.streamId'), h('span', { class: 'mono stream-id' }, s.streamId)],
          [t('devices.video.mediaServer'), h('span', { class: 'mono' }, s.mediaServerId)],
          [t('devices.video.ssrc'), h('span', { class: 'mono' }, s.ssrc)],
          ...['rtsp', 'rtmp', 'flv', 'hls'].filter((k) => s.urls && s.urls[k]).map((k) => [k.toUpperCase(), urlRow(k, s.urls[k])]),
        ]),
        h('div', { class: 'form-foot' }, button(t('devices.video.stop'), () => stopPlay(c), 'btn-danger video-stop')));
    } catch (err) {
      if (ctx.alive) refusal(playing, err);
    }
  };
  const stopPlay = async (c) => {
    if (!await confirm(t('devices.video.stopConfirm', { name: c.name || c.channelId }), t('devices.video.stop'), true)) return;
    try {
      await post(base + '/video/stop', { channelId: c.channelId });
      toast(t('devices.video.stopped'));
      playing.replaceChildren();
      delete playing.dataset.state;
    } catch (err) {
      refusal(playing, err);
    }
  };
  load();
  return h('div', { class: 'device-video' },
    h('h3', null, t('devices.video'), ' ', button(t('common.refresh'), load, 'btn-small channels-refresh')),
    holder, playing);
}

function urlRow(kind, url) {
  const input = h('input', { class: 'mono video-url', readonly: true, value: url, dataset: { kind }, onfocus: (e) => e.target.select() });
  const copy = async () => {
    input.select();
    try {
      if (navigator.clipboard) await navigator.clipboard.writeText(url);
      else document.execCommand('copy');
      toast(t('devices.video.copied'));
    } catch {
      document.execCommand('copy');
    }
  };
  return h('div', { class: 'url-row' }, input,
    button(t('devices.video.copy'), copy, 'btn-small copy'),
    /^https?:/.test(url) ? h('a', { href: url, target: '_blank', rel: 'noopener', class: 'btn btn-small' }, t('devices.video.open')) : null);
}
