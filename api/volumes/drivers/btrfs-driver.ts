// The `btrfs` volume driver: a subvolume per volume on a btrfs filesystem Pier is given;
// snapshots are read-only subvolume snapshots (milliseconds, copy-on-write), a restore is a
// writable snapshot of one, and in-place restore swaps subvolumes by rename. A size limit is a
// qgroup limit on the volume's subvolume.
import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostCommand } from '../host-command.js';
import type { VolumeDriver } from '../volume-driver.js';

export function createBtrfsDriver(root: string): VolumeDriver {
  const volumePath = (id: string) => join(root, 'volumes', id);
  const snapshotPath = (id: string) => join(root, 'snapshots', id);
  const btrfs = (...args: string[]) => hostCommand('btrfs', args);
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );
  const deleteSubvolume = async (path: string) => {
    if (await exists(path)) await btrfs('subvolume', 'delete', path);
  };
  let quotas = false;
  async function limit(path: string, bytes: number | null | undefined): Promise<void> {
    if (!bytes) return;
    if (!quotas) {
      await btrfs('quota', 'enable', root);
      quotas = true;
    }
    await btrfs('qgroup', 'limit', String(bytes), path);
  }

  return {
    kind: 'btrfs',
    root,
    volumePath,
    snapshotPath,
    async create(id, options) {
      await mkdir(join(root, 'volumes'), { recursive: true });
      await btrfs('subvolume', 'create', volumePath(id));
      await limit(volumePath(id), options?.sizeLimitBytes);
      return volumePath(id);
    },
    exists: (id) => exists(volumePath(id)),
    remove: (id) => deleteSubvolume(volumePath(id)),
    async snapshot(volumeId, snapshotId) {
      await mkdir(join(root, 'snapshots'), { recursive: true });
      await btrfs('subvolume', 'snapshot', '-r', volumePath(volumeId), snapshotPath(snapshotId));
    },
    async restore(snapshotId, volumeId, options) {
      await mkdir(join(root, 'volumes'), { recursive: true });
      await btrfs('subvolume', 'snapshot', snapshotPath(snapshotId), volumePath(volumeId));
      await limit(volumePath(volumeId), options?.sizeLimitBytes);
      return volumePath(volumeId);
    },
    async replace(volumeId, snapshotId) {
      const next = `${volumePath(volumeId)}.next`;
      const old = `${volumePath(volumeId)}.old`;
      await deleteSubvolume(next);
      await btrfs('subvolume', 'snapshot', snapshotPath(snapshotId), next);
      await deleteSubvolume(old);
      await rename(volumePath(volumeId), old);
      await rename(next, volumePath(volumeId));
      await deleteSubvolume(old);
    },
    removeSnapshot: (id) => deleteSubvolume(snapshotPath(id)),
    async staging(name) {
      const dir = join(root, 'staging', name);
      await mkdir(join(root, 'staging'), { recursive: true });
      await deleteSubvolume(dir);
      await btrfs('subvolume', 'create', dir);
      return dir;
    },
    discard: (stagingDir) => deleteSubvolume(stagingDir),
    async adopt(stagingDir, snapshotId) {
      await mkdir(join(root, 'snapshots'), { recursive: true });
      await btrfs('subvolume', 'snapshot', '-r', stagingDir, snapshotPath(snapshotId));
      await deleteSubvolume(stagingDir);
    },
  };
}
