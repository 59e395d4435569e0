// 产品: products group devices that reach the platform through one gateway and share the
// official protocol's credentials (secureId / secureKey, the key write-only). A product's
// gateway cannot change while it has devices (409 product_has_devices): the form shows it.

import { get, post, put, listAll, session } from '../api.js';
import { remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, page, table, button, form, formModal, fmtTime, pager } from '../ui.js';

add({
  'products.title.new': ['新增产品', 'New product'],
  'products.title.edit': ['编辑产品', 'Edit product'],
  'products.id': ['产品ID', 'Product ID'],
  'products.id.help': ['可选：留空则自动生成；保存后不可修改', 'Optional: generated when empty; it cannot change once saved'],
  'products.name': ['产品名称', 'Product name'],
  'products.gateway': ['接入网关', 'Gateway'],
  'products.gateway.none': ['（不接入网关）', '(no gateway)'],
  'products.gateway.help': ['产品下已有设备时不能更换网关', 'The gateway cannot change while the product has devices'],
  'products.secureId': ['secureId', 'secureId'],
  'products.secureId.help': ['官方协议的设备认证ID；留空则自动生成', 'Device login id of the official protocol; generated when empty'],
  'products.secureKey': ['secureKey', 'secureKey'],
  'products.secureKey.help': ['官方协议的设备认证密钥（8–128个字符），保存后不会再显示', 'Device login key of the official protocol (8–128 characters); never shown again'],
  'products.search': ['产品名称', 'Product name'],
});

const PATH = '/api/v1/products';
const PAGE_SIZE = 20;

export const routes = [
  { path: '/products', menu: 'products', title: 'menu.products', render: list },
];

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const q = ctx.query.q || '';
  const [r, gateways] = await Promise.all([
    get(PATH, { page: pageNo, pageSize: PAGE_SIZE, q, sort: '-createdAt' }),
    listAll('/api/v1/gateways'),
  ]);
  const gwName = (id) => {
    if (!id) return '-';
    const g = gateways.find((x) => x.id === id);
    return g ? `${g.name} (${id})` : id;
  };
  const search = h('input', { placeholder: t('products.search'), value: q, class: 'search' });
  const find = () => ctx.go('/products?q=' + encodeURIComponent(search.value.trim()));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  const admin = session.isAdmin;
  const columns = [
    { title: t('products.id'), render: (p) => h('span', { class: 'mono' }, p.id) },
    { title: t('products.name'), key: 'name' },
    { title: t('products.gateway'), render: (p) => gwName(p.gatewayId) },
    { title: t('common.description'), render: (p) => p.description || '-' },
    { title: t('common.createdAt'), render: (p) => fmtTime(p.createdAt) },
  ];
  if (admin) {
    columns.push({ title: t('common.actions'), render: (p) => h('div', { class: 'row-actions' },
      button(t('common.edit'), () => editor(ctx, p, gateways), 'btn-link edit'),
      button(t('common.delete'), async () => { if (await remove(PATH, p)) ctx.rerender(); }, 'btn-link danger delete')) });
  }
  return page(t('menu.products'),
    admin ? [button(t('common.add'), () => editor(ctx, null, gateways), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, search, button(t('common.search'), find)),
    table(columns, r.items || [], { rowId: (p) => p.id }),
    pager(pageNo, PAGE_SIZE, r.total, (p) => ctx.go(`/products?q=${encodeURIComponent(q)}&page=${p}`)));
}

// editor opens the product's form in a dialog: current is null for a new product.
function editor(ctx, current, gateways) {
  const options = [['', t('products.gateway.none')]].concat(
    gateways.map((g) => [g.id, `${g.name} · ${g.provider}`]));
  const f = form([
    { name: 'id', label: t('products.id'), readonly: !!current, help: current ? null : t('products.id.help') },
    { name: 'name', label: t('products.name'), required: true },
    { name: 'gatewayId', label: t('products.gateway'), kind: 'select', options, help: t('products.gateway.help') },
    { name: 'secureId', label: t('products.secureId'), help: t('products.secureId.help') },
    { name: 'secureKey', label: t('products.secureKey'), kind: 'password', secret: !!current, help: t('products.secureKey.help') },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3 },
  ], current || {});
  formModal(t(current ? 'products.title.edit' : 'products.title.new'), f,
    (body) => (current ? put(PATH + '/' + encodeURIComponent(current.id), body) : post(PATH, body)), () => ctx.rerender());
}
