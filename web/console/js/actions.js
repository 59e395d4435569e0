// The confirmed actions every list shares: enable/disable and delete a record, each asked
// first (the manual: 点击…按钮，然后点击确定), each refusal shown as the server words it.

import { post, del } from './api.js';
import { t } from './i18n.js';
import { confirm, toast, failed } from './ui.js';

const enc = encodeURIComponent;

// switchState asks, then enables or disables the record at path/id; answers whether it
// changed.
export async function switchState(path, rec) {
  const enable = rec.state !== 'enabled';
  const question = t(enable ? 'common.confirmEnable' : 'common.confirmDisable', { name: rec.name || rec.id });
  if (!await confirm(question, t(enable ? 'common.enable' : 'common.disable'), !enable)) return false;
  try {
    await post(`${path}/${enc(rec.id)}/${enable ? 'enable' : 'disable'}`);
    toast(t('common.done'));
    return true;
  } catch (err) { failed(err); return false; }
}

// remove asks, then deletes the record at path/id; a refusal (409 …_enabled,
// …_referenced) is shown. Answers whether it is gone.
export async function remove(path, rec) {
  if (!await confirm(t('common.confirmDelete', { name: rec.name || rec.id }), t('common.delete'), true)) return false;
  try { await del(`${path}/${enc(rec.id)}`); toast(t('common.deleted')); return true; } catch (err) { failed(err); return false; }
}
