// 协议管理: device message codecs. A package protocol is a .zip (manifest.json and the
// JavaScript codec it names) uploaded as multipart/form-data; a local protocol names an
// absolute directory with the same layout on every node, read again on 重新加载. The
// built-in official protocol is listed but can be neither edited nor deleted. As in the
// manual, adding and editing happen in a dialog (弹框) confirmed with 确定.

import { get, post, put, upload, session } from '../api.js';
import { remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, page, table, button, form, modal, confirm, toast, failed, fmtTime, pager, progress, fill } from '../ui.js';

add({
  'protocols.title.new': ['新增协议', 'New protocol'],
  'protocols.title.edit': ['编辑协议', 'Edit protocol'],
  'protocols.name': ['名称', 'Name'],
  'protocols.name.help': ['为协议命名，最多可输入64个字符', 'Up to 64 characters'],
  'protocols.type': ['类型', 'Type'],
  'protocols.type.package': ['协议包 (.zip)', 'Package (.zip)'],
  'protocols.type.local': ['本地目录', 'Local directory'],
  'protocols.type.builtin': ['内置', 'Built in'],
  'protocols.type.fixed': ['协议类型不可编辑', 'The protocol type cannot be changed'],
  'protocols.file': ['协议包', 'Protocol package'],
  'protocols.file.help': ['上传协议包，文件格式为 .zip：包含 manifest.json 及其指定的 JavaScript 编解码脚本', 'Upload the package as a .zip holding manifest.json and the JavaScript codec it names'],
  'protocols.file.replace': ['替换协议包', 'Replace the package'],
  'protocols.file.replace.help': ['可选：选择新的协议包 (.zip) 以替换当前代码', 'Optional: choose a new package (.zip) to replace the current code'],
  'protocols.location': ['本地目录', 'Local directory'],
  'protocols.location.help': ['填写本地协议目录绝对地址，如：/opt/protocols/demo（每个节点上目录结构相同）', 'The absolute directory of the protocol, like /opt/protocols/demo (the same layout on every node)'],
  'protocols.description.help': ['为协议填写备注信息，最多可输入200个字符，非必填', 'Optional notes, up to 200 characters'],
  'protocols.manifest': ['版本 / 传输协议', 'Version / transports'],
  'protocols.builtin': ['内置', 'built in'],
  'protocols.reload': ['重新加载', 'Reload'],
  'protocols.reloaded': ['已重新加载', 'Reloaded'],
  'protocols.confirmReplace': ['确认用新的协议包替换「{name}」的代码？', 'Replace the code of “{name}” with the new package?'],
  'protocols.replaced': ['协议包已替换', 'Package replaced'],
  'protocols.uploading': ['上传中…', 'Uploading…'],
});

const PATH = '/api/v1/protocols';
const enc = encodeURIComponent;

export const routes = [
  { path: '/protocols', menu: 'protocols', title: 'menu.protocols', render: list },
];

function typeLabel(type) {
  if (type === 'package' || type === 'local' || type === 'builtin') return t('protocols.type.' + type);
  return type || '-';
}

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const q = ctx.query.q || '';
  const r = await get(PATH, { page: pageNo, pageSize: 20, q, sort: '-createdAt' });
  const admin = session.isAdmin;
  const search = h('input', { placeholder: t('common.name'), value: q, class: 'search' });
  const find = () => ctx.go('/protocols?q=' + enc(search.value.trim()));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const actions = admin ? [button(t('common.add'), () => openCreate(ctx), 'btn-primary add')] : [];
  return page(t('menu.protocols'), actions,
    h('div', { class: 'toolbar' }, search, button(t('common.search'), find)),
    table([
      { title: t('protocols.name'), render: (p) => [h('span', { class: 'proto-name' }, p.name),
        p.builtin ? [' ', h('span', { class: 'badge badge-builtin proto-builtin' }, t('protocols.builtin'))] : null] },
      { title: t('common.id'), render: (p) => h('span', { class: 'mono' }, p.id) },
      { title: t('protocols.type'), render: (p) => typeLabel(p.type) },
      { title: t('protocols.manifest'), render: (p) => (p.manifest
        ? h('div', { class: 'proto-manifest' },
          h('span', { class: 'proto-version' }, p.manifest.version || '-'),
          h('div', { class: 'muted proto-transports' }, (p.manifest.transports || []).join(', ') || '-'))
        : '-') },
      { title: t('common.description'), render: (p) => p.description || '-' },
      { title: t('common.updatedAt'), render: (p) => fmtTime(p.updatedAt) },
      { title: t('common.actions'), render: (p) => (admin && !p.builtin ? h('div', { class: 'row-actions' },
        button(t('common.edit'), () => openEdit(ctx, p), 'btn-link edit'),
        p.type === 'local' ? button(t('protocols.reload'), () => reload(ctx, p), 'btn-link reload') : null,
        button(t('common.delete'), async () => { if (await remove(PATH, p)) ctx.rerender(); }, 'btn-link danger delete')) : '-') },
    ], r.items || [], { rowId: (p) => p.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/protocols?q=${enc(q)}&page=${p}`)));
}

async function reload(ctx, p) {
  try {
    await post(PATH + '/' + enc(p.id) + '/reload');
    toast(t('protocols.reloaded'));
    ctx.rerender();
  } catch (err) { failed(err); }
}

// fileField turns the form's text input named `file` into a .zip picker, so the server's
// errors naming `file` land in that field's error slot. Answers {get, clear} of the File.
function fileField(f) {
  const el = f.field('file').input.el;
  el.type = 'file';
  el.accept = '.zip,application/zip';
  el.classList.add('proto-file');
  return { get: () => (el.files && el.files[0]) || null, clear: () => { el.value = ''; } };
}

// dialog opens the form in a modal with 取消 / 确定; ok(done) runs the save and answers
// true when the dialog may close.
function dialog(title, f, ok) {
  const status = h('div', { class: 'proto-progress' });
  let busy = false;
  const okBtn = button(t('common.ok'), async () => {
    if (busy) return;
    busy = true;
    okBtn.classList.add('disabled');
    try {
      if (await ok(status)) m.close();
    } finally {
      busy = false;
      okBtn.classList.remove('disabled');
      fill(status);
    }
  }, 'btn-primary save');
  const m = modal(title, h('div', { class: 'proto-dialog' }, f.el, status),
    [button(t('common.cancel'), () => m.close(), 'cancel'), okBtn], { sticky: true });
  return m;
}

function onProgress(status) {
  return (sent, total) => fill(status, progress(total ? (sent / total) * 100 : 0, t('protocols.uploading')));
}

function openCreate(ctx) {
  const f = form([
    { name: 'name', label: t('protocols.name'), required: true, help: t('protocols.name.help') },
    { name: 'type', label: t('protocols.type'), kind: 'select', required: true,
      options: [['package', t('protocols.type.package')], ['local', t('protocols.type.local')]] },
    { name: 'file', label: t('protocols.file'), required: true, omit: true, help: t('protocols.file.help'),
      show: (v) => v.type === 'package' },
    { name: 'configuration.location', label: t('protocols.location'), required: true, placeholder: '/opt/protocols/demo',
      help: t('protocols.location.help'), show: (v) => v.type === 'local' },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3, help: t('protocols.description.help') },
  ], { type: 'package' });
  const file = fileField(f);
  dialog(t('protocols.title.new'), f, async (status) => {
    f.clearErrors();
    const body = f.value();
    try {
      if (body.type === 'package') {
        const fd = new FormData();
        fd.append('name', body.name || '');
        fd.append('type', 'package');
        if (body.description) fd.append('description', body.description);
        const zip = file.get();
        if (zip) fd.append('file', zip, zip.name);
        await upload('POST', PATH, fd, onProgress(status));
      } else {
        await post(PATH, { name: body.name, type: 'local', configuration: { location: (body.configuration || {}).location }, description: body.description });
      }
    } catch (err) {
      f.showErrors(err);
      return false;
    }
    toast(t('common.saved'));
    ctx.rerender();
    return true;
  });
}

function openEdit(ctx, p) {
  const isPackage = p.type === 'package';
  const fields = [
    { name: 'name', label: t('protocols.name'), required: true, help: t('protocols.name.help') },
    { name: 'type', label: t('protocols.type'), kind: 'select', readonly: true, disabled: true, help: t('protocols.type.fixed'),
      options: [['package', t('protocols.type.package')], ['local', t('protocols.type.local')]] },
  ];
  if (isPackage) fields.push({ name: 'file', label: t('protocols.file.replace'), omit: true, help: t('protocols.file.replace.help') });
  else fields.push({ name: 'configuration.location', label: t('protocols.location'), required: true, help: t('protocols.location.help') });
  fields.push({ name: 'description', label: t('common.description'), kind: 'textarea', rows: 3, help: t('protocols.description.help') });
  const f = form(fields, p);
  const file = isPackage ? fileField(f) : { get: () => null, clear: () => {} };
  let replaced = false;
  dialog(t('protocols.title.edit'), f, async (status) => {
    f.clearErrors();
    const zip = file.get();
    try {
      if (zip) {
        if (!await confirm(t('protocols.confirmReplace', { name: p.name }), t('common.ok'), true)) return false;
        const fd = new FormData();
        fd.append('file', zip, zip.name);
        await upload('PUT', PATH + '/' + enc(p.id) + '/package', fd, onProgress(status));
        file.clear(); // replaced: a retry of the fields below must not upload it again
        replaced = true;
      }
      await put(PATH + '/' + enc(p.id), f.value({ type: p.type, configuration: {} }));
    } catch (err) {
      if (err && (err.code === 'protocol_builtin' || err.code === 'protocol_referenced')) failed(err);
      else f.showErrors(err);
      if (replaced) toast(t('protocols.replaced'));
      return false;
    }
    toast(t('common.saved'));
    ctx.rerender();
    return true;
  });
}
