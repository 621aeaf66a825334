// pier doctor's volume check on real filesystems: a btrfs of the test's own (a loop file; skipped
// where the host cannot make one) and a plain temp folder. With PIER_VOLUME_DRIVER=btrfs, a folder
// not on btrfs fails with the fix, and so does btrfs without its tool; auto says which driver the
// folder gets; a folder that does not exist yet is judged by the filesystem it will be on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkVolumes } from '../../../cli/doctor/volume-checks.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';

test('volumes on a plain folder: fine for dir and auto, a failure with the fix for btrfs', async (t) => {
  const root = join(await tempRoot(t), 'not', 'made', 'yet');
  assert.equal((await checkVolumes({ dir: root, driver: 'dir' })).status, 'ok');
  const auto = await checkVolumes({ dir: root, driver: 'auto' });
  assert.deepEqual([auto.status, /the dir driver/.test(auto.message)], ['ok', true]);
  const btrfs = await checkVolumes({ dir: root, driver: 'btrfs' });
  assert.equal(btrfs.status, 'fail');
  assert.match(btrfs.message, /PIER_VOLUME_DRIVER=btrfs, but .* is not on a btrfs filesystem/);
  assert.match(btrfs.fix ?? '', /mount a btrfs filesystem .*PIER_VOLUME_DRIVER=auto/);
});

test('volumes on btrfs: the btrfs driver with its tool; without the tool, a failure saying what to install', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount a btrfs loop file');
  const mnt = await btrfsLoop(t);
  if (!mnt) return;
  const dir = join(mnt, 'volumes');
  for (const driver of ['btrfs', 'auto'] as const) {
    const ok = await checkVolumes({ dir, driver });
    assert.equal(ok.status, 'ok', `${driver}: ${ok.message}`);
    assert.match(ok.message, /is on btrfs, btrfs driver \(btrfs-progs v/);
  }
  const noTool = await checkVolumes({ dir, driver: 'btrfs' }, async () => null);
  assert.equal(noTool.status, 'fail');
  assert.match(noTool.fix ?? '', /btrfs-progs/);
});
