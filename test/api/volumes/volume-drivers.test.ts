// Both volume drivers held to the contract: dir on a temp folder, btrfs on a loop file of the test's own.
import { openVolumeDriver } from '../../../api/volumes/open-volume-driver.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';
import { volumeDriverContract } from './volume-driver-contract.js';
import assert from 'node:assert/strict';

volumeDriverContract('dir driver', async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'auto');
  assert.equal(driver.kind, 'dir');
  return driver;
});

volumeDriverContract('btrfs driver', async (t) => {
  const mnt = await btrfsLoop(t);
  if (!mnt) return null;
  const driver = await openVolumeDriver(mnt, 'auto');
  assert.equal(driver.kind, 'btrfs');
  return driver;
});
