// 证书管理: certificates for TLS and DTLS listeners. PEM pasted or read from a file; the
// derived fields (subject, issuer, names, validity, fingerprint) shown once saved; the
// private key is write-only and never shown.

import { get, post, put, session } from '../api.js';
import { remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, page, table, button, form, toast, fmtTime, kv, pager, once } from '../ui.js';

add({
  'cert.title.new': ['新增证书', 'New certificate'],
  'cert.title.edit': ['编辑证书', 'Edit certificate'],
  'cert.name': ['证书名称', 'Certificate name'],
  'cert.cert': ['证书文件', 'Certificate (PEM)'],
  'cert.cert.help': ['粘贴PEM编码的证书内容，或上传证书文件', 'Paste the PEM certificate, or upload its file'],
  'cert.key': ['证书私钥', 'Private key (PEM)'],
  'cert.key.help': ['粘贴PEM编码的私钥，或上传私钥文件；私钥保存后不会再显示', 'Paste the PEM private key, or upload its file; it is never shown again'],
  'cert.trust': ['信任证书', 'Trusted CA bundle'],
  'cert.trust.help': ['可选：用于校验设备客户端证书（双向TLS）', 'Optional: verifies device client certificates (mutual TLS)'],
  'cert.subject': ['主题', 'Subject'],
  'cert.issuer': ['颁发者', 'Issuer'],
  'cert.dnsNames': ['域名', 'DNS names'],
  'cert.notBefore': ['生效时间', 'Valid from'],
  'cert.notAfter': ['到期时间', 'Valid until'],
  'cert.fingerprint': ['SHA-256 指纹', 'SHA-256 fingerprint'],
});

const PATH = '/api/v1/certificates';

export const routes = [
  { path: '/certificates', menu: 'certificates', title: 'menu.certificates', render: list },
  { path: '/certificates/new', menu: 'certificates', title: 'cert.title.new', render: (ctx) => edit(ctx, null) },
  { path: '/certificates/:id', menu: 'certificates', title: 'cert.title.edit', render: (ctx) => edit(ctx, ctx.params.id) },
];

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const q = ctx.query.q || '';
  const r = await get(PATH, { page: pageNo, pageSize: 20, q, sort: '-createdAt' });
  const search = h('input', { placeholder: t('common.name'), value: q, class: 'search' });
  const find = () => ctx.go('/certificates?q=' + encodeURIComponent(search.value.trim()));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const admin = session.isAdmin;
  return page(t('menu.certificates'), admin ? [button(t('common.add'), () => ctx.go('/certificates/new'), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, search, button(t('common.search'), find)),
    table([
      { title: t('cert.name'), render: (c) => h('a', { href: '#/certificates/' + encodeURIComponent(c.id) }, c.name) },
      { title: t('cert.subject'), key: 'subject' },
      { title: t('cert.notAfter'), render: (c) => fmtTime(c.notAfter) },
      { title: t('common.description'), render: (c) => c.description || '-' },
      { title: t('common.actions'), render: (c) => h('div', { class: 'row-actions' },
        button(t(admin ? 'common.edit' : 'common.view'), () => ctx.go('/certificates/' + encodeURIComponent(c.id)), 'btn-link ' + (admin ? 'edit' : 'view')),
        !admin ? null :
        button(t('common.delete'), async () => { if (await remove(PATH, c)) ctx.rerender(); }, 'btn-link danger delete')) },
    ], r.items, { rowId: (c) => c.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/certificates?q=${encodeURIComponent(q)}&page=${p}`)));
}

async function edit(ctx, id) {
  const current = id ? await get(PATH + '/' + encodeURIComponent(id)) : null;
  const f = form([
    { name: 'name', label: t('cert.name'), required: true },
    { name: 'cert', label: t('cert.cert'), kind: 'textarea', rows: 8, file: true, accept: '.pem,.crt,.cer', help: t('cert.cert.help'), required: true },
    { name: 'key', label: t('cert.key'), kind: 'textarea', rows: 6, file: true, accept: '.pem,.key', help: t('cert.key.help'), secret: !!current, required: !current },
    { name: 'trust', label: t('cert.trust'), kind: 'textarea', rows: 4, file: true, accept: '.pem,.crt', help: t('cert.trust.help') },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 },
  ], current || {});
  const save = once(async () => {
    const body = f.value();
    try {
      if (current) await put(PATH + '/' + encodeURIComponent(current.id), body);
      else await post(PATH, body);
      toast(t('common.saved'));
      ctx.go('/certificates');
    } catch (err) {
      f.showErrors(err);
    }
  });
  const derived = current ? h('div', null, h('h3', null, t('cert.fingerprint')), kv([
    [t('cert.subject'), current.subject],
    [t('cert.issuer'), current.issuer],
    [t('cert.dnsNames'), (current.dnsNames || []).join(', ') || '-'],
    [t('cert.notBefore'), fmtTime(current.notBefore)],
    [t('cert.notAfter'), fmtTime(current.notAfter)],
    [t('cert.fingerprint'), h('span', { class: 'mono' }, current.fingerprintSha256)],
  ])) : null;
  return page(t(current ? 'cert.title.edit' : 'cert.title.new'), [button(t('common.back'), () => ctx.go('/certificates'))],
    f.el,
    session.isAdmin ? h('div', { class: 'form-foot' }, button(t('common.cancel'), () => ctx.go('/certificates')), button(t('common.save'), save, 'btn-primary save')) : null,
    derived);
}
