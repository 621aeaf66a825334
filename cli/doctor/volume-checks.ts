// `pier doctor` for volumes: with PIER_VOLUME_DRIVER=btrfs the volume folder must be on btrfs and
// the btrfs tool installed, or no volume can be made (snapshots are btrfs snapshots); with auto,
// it says which driver the folder gets. The folder itself may not exist yet: the nearest folder
// above it that does says which filesystem it will be on.
import { execFile } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ServerConfig } from '../../api/config.js';
import type { CheckResult } from './host-checks.js';

const BTRFS_SUPER_MAGIC = 0x9123683e;
const NAME = 'volumes';

export async function checkVolumes(volumes: Pick<ServerConfig['volumes'], 'dir' | 'driver'>, btrfsTool: () => Promise<string | null> = btrfsVersion): Promise<CheckResult> {
  const { dir, driver } = volumes;
  if (driver === 'dir') return { name: NAME, status: 'ok', message: `${dir}, dir driver (snapshots are copies)` };
  const onBtrfs = await isOnBtrfs(dir);
  if (!onBtrfs) {
    if (driver === 'auto') return { name: NAME, status: 'ok', message: `${dir} is not on btrfs: the dir driver (snapshots are copies; btrfs there makes them instant)` };
    return {
      name: NAME,
      status: 'fail',
      message: `PIER_VOLUME_DRIVER=btrfs, but ${dir} is not on a btrfs filesystem: the server starts without volumes, and deploys of apps with volumes fail`,
      fix: `mount a btrfs filesystem at ${dir} (or above it; \`mkfs.btrfs DEVICE && mount DEVICE ${dir}\`), point PIER_VOLUMES_DIR at one, or set PIER_VOLUME_DRIVER=auto`,
    };
  }
  const tool = await btrfsTool();
  if (tool === null) {
    return { name: NAME, status: 'fail', message: `${dir} is on btrfs, but the btrfs tool is not installed: volumes cannot be made there`, fix: 'apt-get install btrfs-progs (or your system\'s btrfs-progs package)' };
  }
  return { name: NAME, status: 'ok', message: `${dir} is on btrfs, btrfs driver (${tool})` };
}

async function isOnBtrfs(dir: string): Promise<boolean> {
  for (let d = dir; ; d = dirname(d)) {
    const st = await statfs(d).catch(() => null);
    if (st) return st.type === BTRFS_SUPER_MAGIC;
    if (dirname(d) === d) return false;
  }
}

function btrfsVersion(): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('btrfs', ['--version'], { timeout: 5000 }, (err, stdout) => resolve(err ? null : stdout.trim().split('\n')[0] ?? 'btrfs'));
  });
}
