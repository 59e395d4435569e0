// 远程升级: firmwares (uploaded with their sign computed in the browser, and a progress bar
// of the bytes sent), each firmware's upgrade tasks, and a task's progress with its device
// records, all kept live by polling. Stop (停止), resume (继续升级) and retry (批量重试)
// follow the manual: each shows only when it has something to do.

import { get, post, put, upload, listAll, session } from '../api.js';
import { remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, fill, page, table, button, form, modal, confirm, toast, failed, fmtTime, fmtBytes, badge, kv, pager, progress } from '../ui.js';
import { fileDigest } from '../hash.js';

add({
  'ota.firmware.new': ['新增固件', 'New firmware'],
  'ota.firmware.edit': ['编辑固件', 'Edit firmware'],
  'ota.name': ['名称', 'Name'],
  'ota.product': ['所属产品', 'Product'],
  'ota.product.pick': ['请选择产品', 'Choose a product'],
  'ota.version': ['版本号', 'Version'],
  'ota.versionOrder': ['版本序号', 'Version order'],
  'ota.versionOrder.help': ['设备拉取时按序号从小往大升级，也可直接拉取最大序号的固件', 'Devices pulling upgrade to higher orders'],
  'ota.signMethod': ['签名方式', 'Sign method'],
  'ota.sign': ['签名', 'Sign'],
  'ota.sign.help': ['选择文件后自动计算，也可填写本地计算的值以校验上传的文件', 'Computed when a file is chosen; or enter your own to check the upload against'],
  'ota.sign.computing': ['计算中… {n}%', 'computing… {n}%'],
  'ota.sign.done': ['已按文件计算', 'computed from the file'],
  'ota.sign.failed': ['计算失败：{msg}', 'could not compute: {msg}'],
  'ota.size': ['文件大小', 'Size'],
  'ota.file': ['固件上传', 'Firmware file'],
  'ota.file.help': ['选择要上传的固件文件', 'Choose the firmware file to upload'],
  'ota.properties': ['其他配置', 'Other settings'],
  'ota.properties.help': ['自定义远程升级所需的其他参数，作为升级参数下发给设备', 'Extra parameters sent to devices with the upgrade'],
  'ota.prop.id': ['参数标识', 'Key'],
  'ota.prop.name': ['参数名称', 'Label'],
  'ota.prop.value': ['参数值', 'Value'],
  'ota.prop.add': ['添加参数', 'Add a parameter'],
  'ota.prop.remove': ['移除', 'Remove'],
  'ota.uploading': ['已上传 {sent} / {total}', 'Sent {sent} of {total}'],
  'ota.uploaded': ['固件已上传', 'Firmware uploaded'],
  'ota.tasks': ['升级任务', 'Upgrade tasks'],
  'ota.tasks.title': ['升级任务', 'Upgrade tasks'],
  'ota.task.title': ['任务详情', 'Upgrade task'],
  'ota.task.new': ['新增升级任务', 'New upgrade task'],
  'ota.task.name': ['任务名称', 'Task name'],
  'ota.firmware': ['固件', 'Firmware'],
  'ota.mode': ['推送方式', 'Mode'],
  'ota.mode.push': ['平台推送', 'Platform push'],
  'ota.mode.pull': ['设备拉取', 'Device pull'],
  'ota.responseTimeout': ['响应超时时间（秒）', 'Response timeout (s)'],
  'ota.responseTimeout.help': ['设备端响应升级通知的超时时间', 'How long a device has to answer the upgrade'],
  'ota.timeout': ['升级超时时间（秒）', 'Upgrade timeout (s)'],
  'ota.timeout.help': ['设备完成固件升级的超时时间', 'How long a device has to complete the upgrade'],
  'ota.devices': ['升级设备', 'Devices'],
  'ota.devices.help': ['不选择任何设备即升级该产品的全部设备', 'Choose none to upgrade every device of the product'],
  'ota.devices.all': ['全选', 'Select all'],
  'ota.devices.none': ['该产品暂无设备', 'The product has no devices yet'],
  'ota.devices.every': ['产品的全部设备', 'every device of the product'],
  'ota.devices.n': ['{n} 台设备', '{n} devices'],
  'ota.rollout': ['发布节奏', 'Rollout'],
  'ota.rollout.maxInFlight': ['同时升级设备数上限', 'Devices upgrading at once'],
  'ota.rollout.maxPerMinute': ['每分钟推送上限（0 为不限）', 'Pushes per minute (0: no limit)'],
  'ota.abort': ['自动中止', 'Automatic abort'],
  'ota.abort.failurePercent': ['失败率阈值（%）', 'Failure percent'],
  'ota.abort.minFinished': ['最少完成设备数', 'Minimum finished devices'],
  'ota.abort.help': ['留空则不自动中止：完成设备数达到下限且失败占比达到阈值时停止任务', 'Leave empty for none: the task stops once that many devices finished and that share failed'],
  'ota.abort.off': ['不自动中止', 'none'],
  'ota.abort.desc': ['完成 {min} 台后失败率达到 {pct}% 时中止', 'after {min} finished, at {pct}% failed'],
  'ota.abortReason': ['中止原因', 'Abort reason'],
  'ota.counts': ['设备统计', 'Devices'],
  'ota.progress': ['升级进度', 'Progress'],
  'ota.completedAt': ['完成时间', 'Completed'],
  'ota.stop': ['停止', 'Stop'],
  'ota.resume': ['继续升级', 'Resume'],
  'ota.retry': ['批量重试', 'Retry failed'],
  'ota.confirm.stop': ['停止任务「{name}」？等待升级的设备将不再下发升级指令。', 'Stop “{name}”? Waiting devices will not be sent the upgrade.'],
  'ota.confirm.resume': ['继续升级任务「{name}」？已停止的设备将重新等待升级。', 'Resume “{name}”? Stopped devices wait again.'],
  'ota.confirm.retry': ['重试任务「{name}」中升级失败的设备？', 'Retry the failed devices of “{name}”?'],
  'ota.records': ['设备升级记录', 'Device records'],
  'ota.record.device': ['设备ID', 'Device'],
  'ota.record.errorReason': ['失败原因', 'Error'],
  'ota.record.upgradeTime': ['升级时间', 'Upgrade sent'],
  'ota.record.completeTime': ['完成时间', 'Completed'],
  'ota.allStates': ['全部状态', 'All states'],
  'ota.back.firmwares': ['返回固件列表', 'Back to firmwares'],
  'ota.back.tasks': ['返回升级任务', 'Back to tasks'],
});

const FW = '/api/v1/firmwares';
const TASKS = '/api/v1/upgrade-tasks';
const STATES = ['waiting', 'processing', 'success', 'failed', 'canceled'];
const POLL_MS = 2000;

const enc = encodeURIComponent;

export const routes = [
  { path: '/ota', menu: 'ota', title: 'menu.ota', render: firmwares },
  { path: '/ota/:fid/tasks', menu: 'ota', title: 'ota.tasks.title', render: tasks },
  { path: '/ota/tasks/:id', menu: 'ota', title: 'ota.task.title', render: task },
];

const modeLabel = (m) => (m === 'push' || m === 'pull' ? t('ota.mode.' + m) : (m || '-'));

// poll calls fn every 2 s until the page is left; a call still running is not doubled.
function poll(ctx, fn) {
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || !ctx.alive) return;
    busy = true;
    try { await fn(); } catch (err) { if (ctx.alive) failed(err); } finally { busy = false; }
  }, POLL_MS);
  ctx.onLeave(() => clearInterval(timer));
}

// ---------------------------------------------------------------- firmwares

async function firmwares(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const q = ctx.query.q || '';
  const r = await get(FW, { page: pageNo, pageSize: 20, q, sort: '-createdAt' });
  const search = h('input', { placeholder: t('common.name'), value: q, class: 'search' });
  const find = () => ctx.go('/ota?q=' + enc(search.value.trim()));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const admin = session.isAdmin;
  return page(t('menu.ota'), admin ? [button(t('common.add'), () => firmwareModal(ctx, null), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, search, button(t('common.search'), find)),
    table([
      { title: t('ota.name'), render: (f) => h('span', { class: 'fw-name' }, f.name) },
      { title: t('ota.product'), render: (f) => h('span', { class: 'mono' }, f.productId) },
      { title: t('ota.version'), key: 'version' },
      { title: t('ota.versionOrder'), key: 'versionOrder' },
      { title: t('ota.signMethod'), key: 'signMethod' },
      { title: t('ota.size'), render: (f) => fmtBytes(f.size) },
      { title: t('common.createdAt'), render: (f) => fmtTime(f.createdAt) },
      { title: t('common.actions'), render: (f) => h('div', { class: 'row-actions' },
        button(t('ota.tasks'), () => ctx.go('/ota/' + enc(f.id) + '/tasks'), 'btn-link tasks'),
        admin ? button(t('common.edit'), () => firmwareModal(ctx, f), 'btn-link edit') : null,
        admin ? button(t('common.delete'), async () => { if (await remove(FW, f)) ctx.rerender(); }, 'btn-link danger delete') : null) },
    ], r.items, { rowId: (f) => f.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/ota?q=${enc(q)}&page=${p}`)));
}

// propertiesEditor edits [{id, name, value}] as rows.
function propertiesEditor(initial) {
  const rows = h('div', { class: 'prop-rows' });
  const addRow = (p = {}) => {
    const id = h('input', { class: 'prop-id', placeholder: t('ota.prop.id'), value: p.id || '' });
    const name = h('input', { class: 'prop-name', placeholder: t('ota.prop.name'), value: p.name || '' });
    const value = h('input', { class: 'prop-value', placeholder: t('ota.prop.value'), value: p.value || '' });
    const row = h('div', { class: 'prop-row' }, id, name, value,
      button(t('ota.prop.remove'), () => row.remove(), 'btn-link danger prop-remove'));
    rows.append(row);
  };
  for (const p of initial || []) addRow(p);
  const el = h('div', { class: 'prop-editor' }, rows, button(t('ota.prop.add'), () => addRow(), 'btn-small prop-add'));
  const value = () => [...rows.querySelectorAll('.prop-row')]
    .map((r) => ({ id: r.querySelector('.prop-id').value.trim(), name: r.querySelector('.prop-name').value.trim(), value: r.querySelector('.prop-value').value }))
    .filter((p) => p.id || p.name || p.value);
  return { el, value };
}

// replaceControl puts el in place of a form field's own input (a field kept for its
// label and for the server's messages under it).
function replaceControl(f, name, el) {
  f.field(name).input.el.replaceWith(el);
}

async function firmwareModal(ctx, current) {
  let products;
  try { products = await listAll('/api/v1/products'); } catch (err) { failed(err); return; }
  const options = [['', t('ota.product.pick')], ...products.map((p) => [p.id, p.name && p.name !== p.id ? `${p.name} (${p.id})` : p.id])];
  if (current && !products.some((p) => p.id === current.productId)) options.push([current.productId, current.productId]);
  const editing = !!current;
  const fields = [
    { name: 'name', label: t('ota.name'), required: true },
    { name: 'productId', label: t('ota.product'), kind: 'select', options, required: true, disabled: editing, omit: editing },
    { name: 'version', label: t('ota.version'), required: true, placeholder: '1.0.0' },
    { name: 'versionOrder', label: t('ota.versionOrder'), kind: 'number', required: true, help: t('ota.versionOrder.help') },
    { name: 'signMethod', label: t('ota.signMethod'), kind: 'select', options: [['md5', 'MD5'], ['sha256', 'SHA-256']], required: true, disabled: editing, omit: editing },
    { name: 'sign', label: t('ota.sign'), help: editing ? null : t('ota.sign.help'), readonly: editing },
    editing ? null : { name: 'file', label: t('ota.file'), omit: true, required: true, help: t('ota.file.help') },
    { name: 'properties', label: t('ota.properties'), omit: true, help: t('ota.properties.help') },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 },
  ].filter(Boolean);
  const f = form(fields, current || { signMethod: 'md5' });
  const props = propertiesEditor(current && current.properties);
  replaceControl(f, 'properties', props.el);

  let digest = null; // the running computation: {promise, abort}
  let signStatus = null;
  let fileInput = null;
  let signTouched = false;
  if (!editing) {
    fileInput = h('input', { type: 'file', class: 'firmware-file', name: 'file' });
    replaceControl(f, 'file', fileInput);
    signStatus = h('div', { class: 'field-help sign-status', 'aria-live': 'polite' });
    const signRow = f.field('sign');
    signRow.error.before(signStatus);
    signRow.input.el.addEventListener('input', () => { signTouched = true; signStatus.textContent = ''; });
    const compute = () => {
      if (digest) digest.abort.abort();
      const file = fileInput.files[0];
      if (!file) { signStatus.textContent = ''; digest = null; return; }
      const method = f.get('signMethod') || 'md5';
      const abort = new AbortController();
      signTouched = false;
      f.set('sign', '');
      signStatus.textContent = t('ota.sign.computing', { n: 0 });
      const promise = fileDigest(file, method, (done, total) => {
        if (!abort.signal.aborted) signStatus.textContent = t('ota.sign.computing', { n: total ? Math.floor(done * 100 / total) : 100 });
      }, { signal: abort.signal }).then((hex) => {
        if (abort.signal.aborted) return;
        if (!signTouched) f.set('sign', hex);
        signStatus.textContent = t('ota.sign.done');
      }, (err) => {
        if (abort.signal.aborted) return;
        signStatus.textContent = t('ota.sign.failed', { msg: err.message || String(err) });
      });
      digest = { promise, abort };
    };
    fileInput.addEventListener('change', compute);
    f.field('signMethod').input.el.addEventListener('change', compute);
  }

  const bar = h('div', { class: 'upload-host' });
  const saveBtn = button(t('common.save'), () => save(), 'btn-primary save');
  const m = modal(t(editing ? 'ota.firmware.edit' : 'ota.firmware.new'), [f.el, bar], [
    button(t('common.cancel'), () => { m.close(); }, 'cancel'),
    saveBtn,
  ], { wide: true, sticky: true, onClose: () => { if (digest) digest.abort.abort(); } });

  const showSent = (sent, total) => {
    const pct = total ? (sent * 100) / total : 0;
    const p = progress(pct, t('ota.uploading', { sent: fmtBytes(sent), total: fmtBytes(total) }));
    p.classList.add('upload-progress');
    p.dataset.sent = String(sent);
    fill(bar, p);
  };

  async function save() {
    if (saveBtn.disabled) return;
    saveBtn.disabled = true;
    try {
      const properties = props.value();
      if (editing) {
        const body = f.value({ productId: current.productId, signMethod: current.signMethod, sign: current.sign });
        body.properties = properties;
        await put(FW + '/' + enc(current.id), body);
        toast(t('common.saved'));
      } else {
        if (digest && !signTouched) await digest.promise;
        const v = f.value();
        const fd = new FormData();
        for (const k of ['name', 'productId', 'version', 'versionOrder', 'signMethod', 'sign', 'description']) {
          if (v[k] !== undefined && v[k] !== '') fd.append(k, String(v[k]));
        }
        if (properties.length) fd.append('properties', JSON.stringify(properties));
        const file = fileInput.files[0];
        if (file) {
          fd.append('file', file, file.name);
          showSent(0, file.size);
        }
        await upload('POST', FW, fd, showSent);
        toast(t('ota.uploaded'));
      }
      m.close();
      if (ctx.alive) ctx.rerender();
    } catch (err) {
      bar.replaceChildren();
      f.showErrors(err);
    } finally {
      saveBtn.disabled = false;
    }
  }
}

// ---------------------------------------------------------------- tasks of a firmware

function countsText(c) {
  c = c || {};
  return h('span', { class: 'task-counts' }, STATES.map((s, i) => [i ? ' · ' : '',
    h('span', { class: 'task-count', dataset: { state: s } }, t('state.' + s) + ' ', h('b', null, String(c[s] || 0)))]));
}

async function tasks(ctx) {
  const fid = ctx.params.fid;
  const fw = await get(FW + '/' + enc(fid));
  const pageNo = Number(ctx.query.page || 1);
  const admin = session.isAdmin;
  const load = () => get(TASKS, { firmwareId: fid, page: pageNo, pageSize: 20, sort: '-createdAt' });
  let r = await load();

  const columns = [
    { title: t('ota.task.name'), render: (x) => h('a', { href: '#/ota/tasks/' + enc(x.id), class: 'task-link' }, x.name) },
    { title: t('ota.mode'), render: (x) => modeLabel(x.mode) },
    { title: t('common.state'), render: (x) => badge(x.state) },
    { title: t('ota.counts'), render: (x) => countsText(x.counts) },
    { title: t('ota.progress'), render: (x) => progress(x.progress) },
    { title: t('common.createdAt'), render: (x) => fmtTime(x.createdAt) },
    { title: t('common.actions'), render: (x) => h('div', { class: 'row-actions' },
      button(t('common.view'), () => ctx.go('/ota/tasks/' + enc(x.id)), 'btn-link view'),
      admin && x.state !== 'running' ? button(t('common.delete'), async () => { if (await remove(TASKS, x)) await refresh(); }, 'btn-link danger delete') : null) },
  ];
  const host = h('div', { class: 'task-table' });
  const pagerHost = h('div');
  const rowOf = (x) => table(columns, [x], { rowId: (y) => y.id }).querySelector('tbody tr');
  const paint = () => {
    const tbody = host.querySelector('tbody');
    const shown = tbody ? [...tbody.querySelectorAll('tr[data-id]')].map((tr) => tr.dataset.id) : null;
    if (shown && shown.length === r.items.length && shown.every((id, i) => id === r.items[i].id)) {
      // The same tasks: each row repainted where it stands.
      r.items.forEach((x, i) => tbody.children[i].replaceWith(rowOf(x)));
    } else {
      fill(host, table(columns, r.items, { rowId: (x) => x.id }));
    }
    fill(pagerHost, pager(pageNo, 20, r.total, (p) => ctx.go(`/ota/${enc(fid)}/tasks?page=${p}`)));
  };
  async function refresh() {
    const next = await load();
    if (!ctx.alive) return;
    r = next;
    paint();
  }
  paint();
  poll(ctx, refresh);

  const actions = [button(t('ota.back.firmwares'), () => ctx.go('/ota'), 'back')];
  if (admin) actions.push(button(t('common.add'), () => taskModal(ctx, fw, refresh), 'btn-primary add'));
  return page(t('ota.tasks.title'), actions,
    h('div', { class: 'task-info' }, kv([[t('ota.firmware'), `${fw.name} (${fw.version})`], [t('ota.product'), fw.productId]])),
    host, pagerHost);
}

// devicePicker is a checkbox list of the product's devices; none checked means all.
function devicePicker(devices) {
  if (!devices.length) return { el: h('div', { class: 'field-help device-none' }, t('ota.devices.none')), value: () => [] };
  const boxes = devices.map((d) => h('input', { type: 'checkbox', class: 'device-pick', value: d.id, dataset: { id: d.id } }));
  const all = h('input', { type: 'checkbox', class: 'device-all' });
  all.addEventListener('change', () => { for (const b of boxes) b.checked = all.checked; });
  const el = h('div', { class: 'device-picker' },
    h('label', { class: 'check device-all-row' }, all, ' ', t('ota.devices.all')),
    h('div', { class: 'device-list' }, devices.map((d, i) => h('label', { class: 'check device-row' }, boxes[i], ' ',
      d.name && d.name !== d.id ? `${d.name} (${d.id})` : d.id))));
  return { el, value: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

async function taskModal(ctx, fw, refresh) {
  let devices;
  try { devices = await listAll('/api/v1/devices', { productId: fw.productId }); } catch (err) { failed(err); return; }
  const f = form([
    { name: 'name', label: t('ota.task.name'), required: true },
    { name: 'mode', label: t('ota.mode'), kind: 'select', options: [['push', t('ota.mode.push')], ['pull', t('ota.mode.pull')]], required: true },
    { name: 'responseTimeoutSeconds', label: t('ota.responseTimeout'), kind: 'number', help: t('ota.responseTimeout.help'), show: (v) => v.mode === 'push' },
    { name: 'timeoutSeconds', label: t('ota.timeout'), kind: 'number', help: t('ota.timeout.help') },
    { name: 'deviceIds', label: t('ota.devices'), omit: true, help: t('ota.devices.help') },
    { kind: 'section', label: t('ota.rollout') },
    { name: 'rollout.maxInFlight', label: t('ota.rollout.maxInFlight'), kind: 'number' },
    { name: 'rollout.maxPerMinute', label: t('ota.rollout.maxPerMinute'), kind: 'number' },
    { kind: 'section', label: t('ota.abort') },
    { name: 'abort.failurePercent', label: t('ota.abort.failurePercent'), kind: 'number', help: t('ota.abort.help') },
    { name: 'abort.minFinished', label: t('ota.abort.minFinished'), kind: 'number' },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 },
  ], { mode: 'push', responseTimeoutSeconds: 30, timeoutSeconds: 600, rollout: { maxInFlight: 100, maxPerMinute: 0 } });
  const picker = devicePicker(devices);
  replaceControl(f, 'deviceIds', picker.el);
  const saveBtn = button(t('common.save'), () => save(), 'btn-primary save');
  const m = modal(t('ota.task.new'), f.el, [button(t('common.cancel'), () => m.close(), 'cancel'), saveBtn], { wide: true, sticky: true });
  async function save() {
    if (saveBtn.disabled) return;
    saveBtn.disabled = true;
    try {
      const body = f.value({ firmwareId: fw.id });
      const ids = picker.value();
      if (ids.length) body.deviceIds = ids;
      const created = await post(TASKS, body);
      toast(t('common.saved'));
      m.close();
      if (ctx.alive) {
        try { await refresh(); } catch (err) { failed(err); }
      }
      return created;
    } catch (err) {
      f.showErrors(err);
    } finally {
      saveBtn.disabled = false;
    }
  }
}

// ---------------------------------------------------------------- one task

async function task(ctx) {
  const id = ctx.params.id;
  const path = TASKS + '/' + enc(id);
  let x = await get(path);
  let fw = null;
  try { fw = await get(FW + '/' + enc(x.firmwareId)); } catch { /* shown by its id */ }
  const admin = session.isAdmin;
  let recState = ctx.query.state || '';
  let recPage = 1;

  const countsEl = h('div', { class: 'counts task-counts-big' });
  const progressHost = h('div', { class: 'task-progress' });
  const info = h('div', { class: 'task-info' });
  const stopBtn = button(t('ota.stop'), () => act('stop', 'ota.confirm.stop'), 'btn-danger stop');
  const resumeBtn = button(t('ota.resume'), () => act('resume', 'ota.confirm.resume'), 'btn-primary resume');
  const retryBtn = button(t('ota.retry'), () => act('retry', 'ota.confirm.retry'), 'retry');
  const recHost = h('div', { class: 'records' });
  const recPager = h('div');

  const paintTask = () => {
    const c = x.counts || {};
    fill(countsEl, STATES.map((s) => h('div', { class: 'count', dataset: { state: s } },
      h('div', { class: 'count-n' }, String(c[s] || 0)),
      h('div', { class: 'count-label' }, t('state.' + s)))));
    fill(progressHost, progress(x.progress));
    const abort = x.abort ? t('ota.abort.desc', { min: x.abort.minFinished, pct: x.abort.failurePercent }) : t('ota.abort.off');
    const devs = x.deviceIds && x.deviceIds.length ? t('ota.devices.n', { n: x.deviceIds.length }) : t('ota.devices.every');
    fill(info, kv([
      [t('ota.task.name'), x.name],
      [t('common.id'), h('span', { class: 'mono' }, x.id)],
      [t('ota.firmware'), fw ? `${fw.name} (${fw.version})` : x.firmwareId],
      [t('ota.product'), x.productId],
      [t('ota.mode'), modeLabel(x.mode)],
      [t('common.state'), badge(x.state)],
      x.mode === 'push' ? [t('ota.responseTimeout'), String(x.responseTimeoutSeconds)] : null,
      [t('ota.timeout'), String(x.timeoutSeconds)],
      [t('ota.devices'), devs],
      [t('ota.rollout.maxInFlight'), String((x.rollout || {}).maxInFlight ?? '-')],
      [t('ota.rollout.maxPerMinute'), String((x.rollout || {}).maxPerMinute ?? '-')],
      [t('ota.abort'), abort],
      x.abortReason ? [t('ota.abortReason'), h('span', { class: 'abort-reason' }, x.abortReason)] : null,
      [t('common.createdAt'), fmtTime(x.createdAt)],
      [t('ota.completedAt'), fmtTime(x.completedAt)],
      [t('common.description'), x.description || '-'],
    ]));
    stopBtn.hidden = !(admin && x.state === 'running' && (c.waiting || 0) > 0);
    resumeBtn.hidden = !(admin && ((c.canceled || 0) > 0 || x.state === 'stopped' || x.state === 'aborted'));
    retryBtn.hidden = !(admin && x.mode === 'push' && (c.failed || 0) > 0);
  };

  const recColumns = [
    { title: t('ota.record.device'), render: (d) => h('span', { class: 'mono' }, d.deviceId) },
    { title: t('common.state'), render: (d) => badge(d.state) },
    { title: t('ota.progress'), render: (d) => progress(d.progress) },
    { title: t('ota.record.errorReason'), render: (d) => d.errorReason || '-' },
    { title: t('ota.record.upgradeTime'), render: (d) => fmtTime(d.upgradeTime) },
    { title: t('ota.record.completeTime'), render: (d) => fmtTime(d.completeTime) },
  ];
  const loadRecords = async () => {
    const rs = await get(path + '/devices', { state: recState, page: recPage, pageSize: 20 });
    if (!ctx.alive) return;
    fill(recHost, table(recColumns, rs.items || [], { rowId: (d) => d.deviceId }));
    fill(recPager, pager(recPage, 20, rs.total, (p) => { recPage = p; loadRecords().catch(failed); }));
  };
  const refresh = async () => {
    const next = await get(path);
    if (!ctx.alive) return;
    x = next;
    paintTask();
    await loadRecords();
  };

  async function act(op, question) {
    if (!await confirm(t(question, { name: x.name }), t('ota.' + op), op === 'stop')) return;
    try {
      const next = await post(path + '/' + op);
      toast(t('common.done'));
      if (!ctx.alive) return;
      x = next;
      paintTask();
      await loadRecords();
    } catch (err) { failed(err); }
  }

  const filter = h('select', { class: 'record-state' },
    h('option', { value: '' }, t('ota.allStates')),
    STATES.map((s) => h('option', { value: s }, t('state.' + s))));
  filter.value = recState;
  filter.addEventListener('change', () => { recState = filter.value; recPage = 1; loadRecords().catch(failed); });

  paintTask();
  await loadRecords();
  poll(ctx, refresh);

  return page(t('ota.task.title'), [
    button(t('ota.back.tasks'), () => ctx.go('/ota/' + enc(x.firmwareId) + '/tasks'), 'back'),
    stopBtn, resumeBtn, retryBtn,
  ],
  countsEl, progressHost, info,
  h('h3', null, t('ota.records')),
  h('div', { class: 'toolbar' }, filter),
  recHost, recPager);
}
