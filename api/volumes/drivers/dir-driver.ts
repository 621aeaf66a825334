// The `dir` volume driver, for hosts without btrfs: volumes are plain directories and snapshots
// full copies (`cp -a`, with reflinks where the filesystem has them). A snapshot of a running
// instance is taken paused or stopped by the caller (api/volumes/volume-service.ts), since a copy
// takes time. No size limit is enforced (describe reports the usage).
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostCommand } from '../host-command.js';
import { hostSink, hostSource } from '../host-stream.js';
import { treeHash } from '../tree-hash.js';
import type { VolumeDriver } from '../volume-driver.js';
import { withLocalData } from './local-data.js';

export function createDirDriver(root: string): VolumeDriver {
  const volumePath = (id: string) => join(root, 'volumes', id);
  const snapshotPath = (id: string) => join(root, 'snapshots', id);

  async function copy(from: string, to: string): Promise<void> {
    await rm(to, { recursive: true, force: true });
    await mkdir(to, { recursive: true });
    await hostCommand('cp', ['-a', '--reflink=auto', `${from}/.`, to]);
  }

  return withLocalData({
    kind: 'dir',
    root,
    volumePath,
    snapshotPath,
    async create(id) {
      await mkdir(join(root, 'volumes'), { recursive: true });
      await mkdir(volumePath(id));
      return volumePath(id);
    },
    async exists(id) {
      return stat(volumePath(id)).then(
        () => true,
        () => false,
      );
    },
    async remove(id) {
      await rm(volumePath(id), { recursive: true, force: true });
    },
    async snapshot(volumeId, snapshotId) {
      await mkdir(join(root, 'snapshots'), { recursive: true });
      // Copied beside, then renamed: a half-made copy never reads as a snapshot.
      const partial = `${snapshotPath(snapshotId)}.partial`;
      await copy(volumePath(volumeId), partial);
      await rename(partial, snapshotPath(snapshotId));
    },
    async restore(snapshotId, volumeId) {
      await mkdir(join(root, 'volumes'), { recursive: true });
      const partial = `${volumePath(volumeId)}.partial`;
      await copy(snapshotPath(snapshotId), partial);
      await rename(partial, volumePath(volumeId));
      return volumePath(volumeId);
    },
    async replace(volumeId, snapshotId) {
      const next = `${volumePath(volumeId)}.next`;
      const old = `${volumePath(volumeId)}.old`;
      await copy(snapshotPath(snapshotId), next);
      await rm(old, { recursive: true, force: true });
      await rename(volumePath(volumeId), old);
      await rename(next, volumePath(volumeId));
      await rm(old, { recursive: true, force: true });
    },
    async removeSnapshot(id) {
      await rm(snapshotPath(id), { recursive: true, force: true });
    },
    async staging(name) {
      const dir = join(root, 'staging', name);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async discard(stagingDir) {
      await rm(stagingDir, { recursive: true, force: true });
    },
    async adopt(stagingDir, snapshotId) {
      await mkdir(join(root, 'snapshots'), { recursive: true });
      await rename(stagingDir, snapshotPath(snapshotId));
    },
    // No delta for plain folders: every send is the whole snapshot (the `dir` move copies it all twice).
    send: (snapshotId) => hostSource('tar', ['-C', snapshotPath(snapshotId), '--numeric-owner', '-cf', '-', '.']),
    receive(snapshotId) {
      // Into a .partial folder, renamed once tar has read the whole stream: half a stream never reads as a snapshot.
      const target = snapshotPath(snapshotId);
      return hostSink('sh', ['-c', 'rm -rf "$1.partial" && mkdir -p "$1.partial" && { tar -C "$1.partial" --numeric-owner -xf - && mv "$1.partial" "$1" || { rm -rf "$1.partial"; exit 1; }; }', 'receive', target]);
    },
    fingerprint: async (snapshotId) => (await treeHash(snapshotPath(snapshotId))).sha256,
    receivedFingerprint: async (snapshotId) =>
      (await stat(snapshotPath(snapshotId)).then(
        () => true,
        () => false,
      ))
        ? (await treeHash(snapshotPath(snapshotId))).sha256
        : null,
    async freeze() {},
    // sync(1) -f: the filesystem the root is on, not every disk of the host.
    flush: async () => void (await hostCommand('sync', ['-f', root])),
  });
}
