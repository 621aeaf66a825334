// Picks the driver for a storage root: btrfs when the root is on btrfs (or asked for), else dir.
import { mkdir, statfs } from 'node:fs/promises';
import { PierError } from '../pier-error.js';
import { createBtrfsDriver } from './drivers/btrfs-driver.js';
import { createDirDriver } from './drivers/dir-driver.js';
import type { DriverKind, VolumeDriver } from './volume-driver.js';

const BTRFS_SUPER_MAGIC = 0x9123683e;

export async function openVolumeDriver(root: string, kind: DriverKind | 'auto' = 'auto'): Promise<VolumeDriver> {
  await mkdir(root, { recursive: true });
  const onBtrfs = (await statfs(root)).type === BTRFS_SUPER_MAGIC;
  if (kind === 'btrfs' && !onBtrfs) {
    throw new PierError('E_CONFIG_INVALID', `the volume root ${root} is not on a btrfs filesystem`, {
      status: 400,
      hint: 'mount a btrfs filesystem there, or set PIER_VOLUME_DRIVER=dir (or auto)',
    });
  }
  return kind === 'dir' || !onBtrfs ? createDirDriver(root) : createBtrfsDriver(root);
}
