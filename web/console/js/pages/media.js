// 流媒体服务: the ZLMediaKit servers video devices push RTP to. The list enables, disables
// and deletes (an enabled server cannot be deleted: 409 media_server_enabled); 新增 and 编辑
// open the manual's 流媒体详情页. The API secret is write-only: left empty on edit, the
// stored one is kept.

import { get, post, put, session } from '../api.js';
import { switchState, remove } from '../actions.js';
import { add, t } from '../i18n.js';
import { h, page, table, button, form, toast, badge, pager, once } from '../ui.js';

add({
  'media.title.new': ['新增流媒体服务', 'New media server'],
  'media.title.edit': ['编辑流媒体服务', 'Edit media server'],
  'media.name': ['流媒体名称', 'Media server name'],
  'media.name.help': ['为流媒体服务命名，最多可输入64个字符', 'Up to 64 characters'],
  'media.provider': ['服务商', 'Provider'],
  'media.provider.zlmedia': ['ZLMediaKit (zlmedia)', 'ZLMediaKit (zlmedia)'],
  'media.provider.help': ['配置流媒体服务商；创建后不可修改', 'The media server provider; fixed once created'],
  'media.secret': ['秘钥', 'Secret'],
  'media.secret.help': ['调用流媒体API服务的秘钥', 'The secret for calling the media server’s API'],
  'media.apiHost': ['API Host', 'API host'],
  'media.apiHost.help': ['调用流媒体接口时请求的服务地址（主机名或IP，不含协议与端口）', 'The address of the media server’s HTTP API (host name or IP, no scheme or port)'],
  'media.apiPort': ['API端口', 'API port'],
  'media.api': ['API地址', 'API address'],
  'media.rtpIp': ['RTP IP', 'RTP IP'],
  'media.rtpIp.help': ['视频设备将流推送到该IP地址下，部分设备仅支持IP地址，建议全是用IP地址', 'Video devices push their streams to this address; some devices accept only an IP address, so an IP is recommended'],
  'media.rtpPort': ['RTP端口', 'RTP port'],
  'media.rtpPort.help': ['固定的RTP收流端口；与动态RTP端口都不填时，由流媒体服务为每路流分配端口', 'A fixed RTP port; with neither it nor a dynamic range, the server picks a port per stream'],
  'media.dynamic.section': ['动态RTP端口', 'Dynamic RTP ports'],
  'media.dynamic.start': ['动态RTP端口（起始）', 'Dynamic RTP port (start)'],
  'media.dynamic.end': ['动态RTP端口（结束）', 'Dynamic RTP port (end)'],
  'media.dynamic.help': ['每路流从该范围内开启一个端口；起始与结束需同时填写，都不填则不使用', 'Each stream opens one port from this range; give both start and end, or neither'],
  'media.rtspPort': ['RTSP端口', 'RTSP port'],
  'media.rtmpPort': ['RTMP端口', 'RTMP port'],
  'media.playPort.help': ['可选：填写后播放地址中包含对应的 rtsp:// / rtmp:// 地址', 'Optional: adds rtsp:// / rtmp:// URLs to a play answer'],
  'media.description.help': ['备注信息，最多可输入200个字符，非必填', 'Optional notes, up to 200 characters'],
  'media.note': ['若系统中存在多个流媒体服务，播放视频时会进行随机调用。', 'When there are several media servers, playing a video picks one of them at random.'],
});

const PATH = '/api/v1/media-servers';
const enc = encodeURIComponent;
const RANGE = 'configuration.dynamicRtpPortRange';

export const routes = [
  { path: '/media', menu: 'media', title: 'menu.media', render: list },
  { path: '/media/new', menu: 'media', title: 'media.title.new', render: (ctx) => edit(ctx, null) },
  { path: '/media/:id', menu: 'media', title: 'media.title.edit', render: (ctx) => edit(ctx, ctx.params.id) },
];

function providerLabel(p) {
  return p === 'zlmedia' ? t('media.provider.zlmedia') : (p || '-');
}

async function list(ctx) {
  const pageNo = Number(ctx.query.page || 1);
  const q = ctx.query.q || '';
  const r = await get(PATH, { page: pageNo, pageSize: 20, q, sort: '-createdAt' });
  const admin = session.isAdmin;
  const search = h('input', { placeholder: t('common.name'), value: q, class: 'search' });
  const find = () => ctx.go('/media?q=' + enc(search.value.trim()));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
  return page(t('menu.media'), admin ? [button(t('common.add'), () => ctx.go('/media/new'), 'btn-primary add')] : [],
    h('div', { class: 'toolbar' }, search, button(t('common.search'), find)),
    table([
      { title: t('media.name'), render: (m) => h('a', { href: '#/media/' + enc(m.id), class: 'media-name' }, m.name) },
      { title: t('media.provider'), render: (m) => providerLabel(m.provider) },
      { title: t('media.api'), render: (m) => h('span', { class: 'mono' }, `${(m.configuration || {}).apiHost || '-'}:${(m.configuration || {}).apiPort || '-'}`) },
      { title: t('media.rtpIp'), render: (m) => h('span', { class: 'mono' }, (m.configuration || {}).rtpIp || '-') },
      { title: t('common.state'), render: (m) => badge(m.state) },
      { title: t('common.actions'), render: (m) => (admin ? h('div', { class: 'row-actions' },
        button(t('common.edit'), () => ctx.go('/media/' + enc(m.id)), 'btn-link edit'),
        m.state === 'enabled'
          ? button(t('common.disable'), async () => { if (await switchState(PATH, m)) ctx.rerender(); }, 'btn-link disable')
          : button(t('common.enable'), async () => { if (await switchState(PATH, m)) ctx.rerender(); }, 'btn-link enable'),
        button(t('common.delete'), async () => { if (await remove(PATH, m)) ctx.rerender(); }, 'btn-link danger delete')) : '-') },
    ], r.items || [], { rowId: (m) => m.id }),
    pager(pageNo, 20, r.total, (p) => ctx.go(`/media?q=${enc(q)}&page=${p}`)));
}

async function edit(ctx, id) {
  const current = id ? await get(PATH + '/' + enc(id)) : null;
  const f = form([
    { name: 'name', label: t('media.name'), required: true, help: t('media.name.help') },
    { name: 'provider', label: t('media.provider'), kind: 'select', required: true, disabled: !!current,
      options: [['zlmedia', t('media.provider.zlmedia')]], help: t('media.provider.help') },
    { name: 'configuration.secret', label: t('media.secret'), kind: 'password', required: !current, secret: !!current, help: t('media.secret.help') },
    { name: 'configuration.apiHost', label: t('media.apiHost'), required: true, placeholder: '192.168.1.10', help: t('media.apiHost.help') },
    { name: 'configuration.apiPort', label: t('media.apiPort'), kind: 'number', required: true, placeholder: '80' },
    { name: 'configuration.rtpIp', label: t('media.rtpIp'), required: true, placeholder: '192.168.1.10', help: t('media.rtpIp.help') },
    { name: 'configuration.rtpPort', label: t('media.rtpPort'), kind: 'number', placeholder: '10000', help: t('media.rtpPort.help') },
    { kind: 'section', label: t('media.dynamic.section') },
    { name: RANGE + '[0]', label: t('media.dynamic.start'), kind: 'number', omit: true, placeholder: '30000' },
    { name: RANGE + '[1]', label: t('media.dynamic.end'), kind: 'number', omit: true, placeholder: '30500', help: t('media.dynamic.help') },
    { name: 'configuration.rtspPort', label: t('media.rtspPort'), kind: 'number', placeholder: '554' },
    { name: 'configuration.rtmpPort', label: t('media.rtmpPort'), kind: 'number', placeholder: '1935', help: t('media.playPort.help') },
    { name: 'description', label: t('common.description'), kind: 'textarea', rows: 3, help: t('media.description.help') },
  ], current || { provider: 'zlmedia' });

  // body: the form's values over the stored record's provider (a GET-modify-PUT keeps what
  // the form does not show), with the port range whole or left out.
  const body = () => {
    const out = f.value(current ? { provider: current.provider } : {});
    const start = f.get(RANGE + '[0]');
    const end = f.get(RANGE + '[1]');
    const cfg = out.configuration || (out.configuration = {});
    if (start !== undefined && end !== undefined) cfg.dynamicRtpPortRange = [start, end];
    else if (start !== undefined) cfg.dynamicRtpPortRange = [start]; // the server says which half is missing
    else if (end !== undefined) cfg.dynamicRtpPortRange = [end];
    return { out, half: (start === undefined) !== (end === undefined) ? (start === undefined ? 0 : 1) : -1 };
  };
  const save = once(async () => {
    const { out, half } = body();
    try {
      if (current) await put(PATH + '/' + enc(current.id), out);
      else await post(PATH, out);
      toast(t('common.saved'));
      ctx.go('/media');
    } catch (err) {
      f.showErrors(placeRange(err, half));
    }
  });
  return page(t(current ? 'media.title.edit' : 'media.title.new'), [button(t('common.back'), () => ctx.go('/media'))],
    h('div', { class: 'media-note', role: 'note' }, t('media.note')),
    f.el,
    h('div', { class: 'form-foot' }, button(t('common.cancel'), () => ctx.go('/media'), 'cancel'), button(t('common.save'), save, 'btn-primary save')));
}

// placeRange moves the server's errors about the range as a whole under the start field
// (or the half left empty), where the form can show them.
function placeRange(err, half) {
  const fields = (err && err.fields) || {};
  if (!(RANGE in fields)) return err;
  const out = {};
  for (const [k, v] of Object.entries(fields)) {
    if (k !== RANGE) { out[k] = v; continue; }
    const target = `${RANGE}[${half >= 0 ? half : 0}]`;
    out[target] = out[target] ? out[target] + '; ' + v : v;
  }
  return { message: err.message, status: err.status, code: err.code, fields: out };
}
