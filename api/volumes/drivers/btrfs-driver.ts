// The `btrfs` volume driver: a subvolume per volume on a btrfs filesystem Pier is given;
// snapshots are read-only subvolume snapshots (milliseconds, copy-on-write), a restore is a
// writable snapshot of one, and in-place restore swaps subvolumes by rename. A size limit is a
// qgroup limit on the volume's subvolume.
import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostCommand } from '../host-command.js';
import { hostSink, hostSource } from '../host-stream.js';
import type { VolumeDriver } from '../volume-driver.js';
import { withLocalData } from './local-data.js';

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

  return withLocalData({
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
    send: (snapshotId, parentId) => hostSource('btrfs', ['send', '-q', ...(parentId ? ['-p', snapshotPath(parentId)] : []), snapshotPath(snapshotId)]),
    receive(snapshotId) {
      // btrfs receive names the subvolume after the sent one: the same snapshot id, under snapshots/.
      void snapshotId;
      return hostSink('sh', ['-c', 'mkdir -p "$1" && exec btrfs receive -q "$1"', 'receive', join(root, 'snapshots')]);
    },
    fingerprint: async (snapshotId) => (await show(snapshotPath(snapshotId))).uuid,
    receivedFingerprint: async (snapshotId) => (await exists(snapshotPath(snapshotId)) ? (await show(snapshotPath(snapshotId))).receivedUuid : null),
    async freeze(volumeId) {
      if (await exists(volumePath(volumeId))) await btrfs('property', 'set', '-ts', volumePath(volumeId), 'ro', 'true');
    },
    flush: async () => void (await btrfs('filesystem', 'sync', root)),
  });

  async function show(path: string): Promise<{ uuid: string; receivedUuid: string | null }> {
    const out = await btrfs('subvolume', 'show', path);
    const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(\\S+)`, 'm').exec(out)?.[1] ?? null;
    const received = field('Received UUID');
    return { uuid: field('UUID') ?? '', receivedUuid: received === '-' ? null : received };
  }
}
