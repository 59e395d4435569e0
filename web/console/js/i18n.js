// Chinese and English. Each module registers its own words with add(); t() looks one up in
// the chosen language. The choice is remembered in localStorage; Chinese is the default,
// as in the manual the console follows.

const LANG_KEY = 'linkops.lang';
const words = {};
let current = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';

// add registers {key: [chinese, english]}.
export function add(dict) {
  for (const [k, v] of Object.entries(dict)) words[k] = v;
}

// t answers the word for key, with {name} placeholders filled from vars. An unknown key
// is shown as itself, so a missing word is visible rather than blank.
export function t(key, vars) {
  const pair = words[key];
  let s = pair ? pair[current === 'en' ? 1 : 0] : key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

export function lang() { return current; }

export function setLang(l) {
  current = l === 'en' ? 'en' : 'zh';
  localStorage.setItem(LANG_KEY, current);
  document.documentElement.lang = current === 'en' ? 'en' : 'zh-CN';
}

document.documentElement.lang = current === 'en' ? 'en' : 'zh-CN';

add({
  'app.name': ['linkops 运维管理', 'linkops operations'],
  'lang.switch': ['English', '中文'],
  'menu.ops': ['运维管理', 'Operations'],
  'menu.gateways': ['设备接入网关', 'Device gateways'],
  'menu.protocols': ['协议管理', 'Protocols'],
  'menu.logs': ['日志管理', 'Logs'],
  'menu.network': ['网络组件', 'Network components'],
  'menu.certificates': ['证书管理', 'Certificates'],
  'menu.media': ['流媒体服务', 'Media servers'],
  'menu.ota': ['远程升级', 'Firmware upgrade'],
  'menu.devices.group': ['设备管理', 'Devices'],
  'menu.products': ['产品', 'Products'],
  'menu.devices': ['设备', 'Devices'],
  'menu.system': ['系统', 'System'],
  'menu.cluster': ['集群', 'Cluster'],

  'login.title': ['登录', 'Log in'],
  'login.username': ['用户名', 'Username'],
  'login.password': ['密码', 'Password'],
  'login.submit': ['登录', 'Log in'],
  'login.logout': ['退出', 'Log out'],
  'login.node': ['节点 {node}', 'node {node}'],

  'common.add': ['新增', 'Add'],
  'common.edit': ['编辑', 'Edit'],
  'common.delete': ['删除', 'Delete'],
  'common.view': ['查看', 'View'],
  'common.save': ['保存', 'Save'],
  'common.ok': ['确定', 'OK'],
  'common.cancel': ['取消', 'Cancel'],
  'common.close': ['关闭', 'Close'],
  'common.next': ['下一步', 'Next'],
  'common.prev': ['上一步', 'Back'],
  'common.enable': ['启用', 'Enable'],
  'common.disable': ['禁用', 'Disable'],
  'common.search': ['搜索', 'Search'],
  'common.reset': ['重置', 'Reset'],
  'common.refresh': ['刷新', 'Refresh'],
  'common.actions': ['操作', 'Actions'],
  'common.name': ['名称', 'Name'],
  'common.id': ['ID', 'ID'],
  'common.type': ['类型', 'Type'],
  'common.state': ['状态', 'State'],
  'common.description': ['说明', 'Description'],
  'common.createdAt': ['创建时间', 'Created'],
  'common.updatedAt': ['更新时间', 'Updated'],
  'common.node': ['节点', 'Node'],
  'common.none': ['暂无数据', 'Nothing here yet'],
  'common.loading': ['加载中…', 'Loading…'],
  'common.total': ['共 {n} 条', '{n} in all'],
  'common.yes': ['是', 'yes'],
  'common.no': ['否', 'no'],
  'common.saved': ['已保存', 'Saved'],
  'common.deleted': ['已删除', 'Deleted'],
  'common.done': ['操作成功', 'Done'],
  'common.confirmDelete': ['确认删除「{name}」？', 'Delete “{name}”?'],
  'common.confirmEnable': ['确认启用「{name}」？', 'Enable “{name}”?'],
  'common.confirmDisable': ['确认禁用「{name}」？', 'Disable “{name}”?'],
  'common.secretKept': ['留空则保留已保存的值', 'leave empty to keep the stored value'],
  'common.required': ['必填', 'required'],
  'common.follow': ['实时跟随', 'Follow'],
  'common.stop': ['停止', 'Stop'],
  'common.clear': ['清空', 'Clear'],
  'common.back': ['返回', 'Back'],
  'common.upload': ['上传文件', 'Upload a file'],
  'common.missing': ['未应答的节点：{nodes}', 'Nodes that did not answer: {nodes}'],
  'common.prevPage': ['上一页', 'Previous'],
  'common.nextPage': ['下一页', 'Next'],
  'common.page': ['第 {page} 页', 'page {page}'],
  'state.enabled': ['已启用', 'enabled'],
  'state.disabled': ['已禁用', 'disabled'],
  'state.running': ['运行中', 'running'],
  'state.failed': ['失败', 'failed'],
  'state.stopped': ['已停止', 'stopped'],
  'state.not_configured': ['未配置', 'not configured'],
  'state.unreachable': ['无法访问', 'unreachable'],
  'state.standby': ['待命', 'standby'],
  'state.online': ['在线', 'online'],
  'state.offline': ['离线', 'offline'],
  'state.notActive': ['未激活', 'not active'],
  'state.alive': ['正常', 'alive'],
  'state.suspect': ['可疑', 'suspect'],
  'state.dead': ['失联', 'dead'],
  'state.left': ['已离开', 'left'],
  'state.completed': ['已完成', 'completed'],
  'state.aborted': ['已中止', 'aborted'],
  'state.waiting': ['等待升级', 'waiting'],
  'state.processing': ['升级中', 'processing'],
  'state.success': ['升级成功', 'success'],
  'state.canceled': ['已停止', 'canceled'],
  'state.leader': ['领导者', 'leader'],
  'state.follower': ['跟随者', 'follower'],
  'state.candidate': ['候选者', 'candidate'],
  'state.nonvoter': ['非投票者', 'non-voter'],
});
