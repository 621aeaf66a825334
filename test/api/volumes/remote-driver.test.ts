// The remote driver held to the volume-driver contract, against real `pier agent` processes (each
// with its own root and port): dir on a temp folder, btrfs on a loop file of the test's own. The
// contract's transfer test runs agent to agent through this process, as the API server would
// move a volume between two nodes: full and delta sends, fingerprints, and a truncated stream.
import assert from 'node:assert/strict';
import { connectRemoteVolumeDriver } from '../../../api/volumes/drivers/remote-driver.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';
import { startNodeAgent } from '../../support/node-agent.js';
import { volumeDriverContract } from './volume-driver-contract.js';

volumeDriverContract('remote driver (dir agent)', async (t) => {
  const agent = await startNodeAgent(t, await tempRoot(t));
  const driver = await connectRemoteVolumeDriver({ url: agent.url, token: agent.token });
  assert.equal(driver.kind, 'dir');
  return driver;
});

volumeDriverContract('remote driver (btrfs agent)', async (t) => {
  const mnt = await btrfsLoop(t);
  if (!mnt) return null;
  const agent = await startNodeAgent(t, mnt);
  const driver = await connectRemoteVolumeDriver({ url: agent.url, token: agent.token });
  assert.equal(driver.kind, 'btrfs');
  return driver;
});
