// The reads of a root's data that are the same for the dir and btrfs drivers, done on this
// machine (the API server's own root, or a node agent's): a size by `du`, a tree hash, and a
// snapshot as a portable file out and in (snapshot-archive.ts). A remote root answers the same
// calls through its agent, so no caller needs the data's path on its own machine.
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { PierError } from '../../pier-error.js';
import { hostCommand } from '../host-command.js';
import { readArchive, writeArchive } from '../snapshot-archive.js';
import { treeHash } from '../tree-hash.js';
import type { DriverData, VolumeDriver } from '../volume-driver.js';

type LocalCalls = 'usage' | 'treeHash' | 'exportSnapshot' | 'importSnapshot';

/** The driver with the data calls added, read at the driver's own paths. */
export function withLocalData(driver: Omit<VolumeDriver, LocalCalls>): VolumeDriver {
  /** The data's path, once it is known to be there. */
  async function present(of: DriverData): Promise<string> {
    const [what, id, path] = 'volume' in of ? ['volume', of.volume, driver.volumePath(of.volume)] : ['snapshot', of.snapshot, driver.snapshotPath(of.snapshot)];
    const there = await stat(path).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!there) {
      throw new PierError('E_VOLUME_MISSING', `the data of ${what} ${id} is missing on the root ${driver.root}`, { status: 500, hint: `check ${path} on that machine; it may have been removed by hand` });
    }
    return path;
  }

  return {
    ...driver,
    usage: async (of) => Number((await hostCommand('du', ['-sb', await present(of)])).split('\t')[0]),
    treeHash: async (of) => treeHash(await present(of)),
    exportSnapshot: (snapshotId, header) => writeArchive(driver.snapshotPath(snapshotId), header),
    importSnapshot: (snapshotId, file: Readable) => readArchive(driver, snapshotId, file),
  };
}
