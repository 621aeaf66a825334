// A btrfs filesystem of the test's own: a loop file in a temp folder, formatted and mounted there,
// unmounted and detached (by what this test made) afterwards. Skips the test when the host
// cannot (no btrfs-progs, not root).
import type { TestContext } from 'node:test';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Mounts a fresh btrfs and returns its mount point, or null (test skipped) when the host cannot. */
export async function btrfsLoop(t: TestContext, size = '256M'): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-btrfs-'));
  let device: string | null = null;
  // One hook, in order: unmount, detach, then remove the folder.
  t.after(async () => {
    if (device) {
      await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]).catch(() => {}));
      await run('losetup', ['-d', device]).catch(() => {});
    }
    await rm(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'fs.img');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  try {
    await run('truncate', ['-s', size, file]);
    await run('mkfs.btrfs', ['-q', file]);
  } catch (err) {
    t.skip(`no btrfs here: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
  device = (await run('losetup', ['--find', '--show', file])).stdout.trim();
  await run('mount', [device, mnt]);
  return mnt;
}

/** A plain temp folder for the dir driver, removed afterwards. */
export async function tempRoot(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-vols-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
