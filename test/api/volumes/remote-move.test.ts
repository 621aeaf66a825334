// A volume moved between two node agents' roots by the mover's own code (api/volumes/volume-mover.ts,
// unchanged): the service's roots are two remote drivers, each a real `pier agent` process with a
// root of its own, so every snapshot, send, receive, fingerprint and restore of the move goes over
// HTTP, through this process, as it will between two nodes. The state is in a real database (the
// memory runtime stands in for Docker: no instance holds the volume). A truncated final send
// rolls back: the volume stays on its source, whole, and the target keeps nothing.
import assert from 'node:assert/strict';
import { appendFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { eq, inArray } from 'drizzle-orm';
import { volumeMoves, volumes } from '../../../db/schema/index.js';
import { connectRemoteVolumeDriver } from '../../../api/volumes/drivers/remote-driver.js';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { VolumeDriver } from '../../../api/volumes/volume-driver.js';
import { createVolumeMover } from '../../../api/volumes/volume-mover.js';
import { createVolumeRoots } from '../../../api/volumes/volume-roots.js';
import { createVolumeService } from '../../../api/volumes/volume-service.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';
import { createControlPlane, echoManifest } from '../../support/memory-control-plane.js';
import { startNodeAgent } from '../../support/node-agent.js';

async function agentRoot(t: TestContext, kind: 'dir' | 'btrfs'): Promise<VolumeDriver | null> {
  const root = kind === 'btrfs' ? await btrfsLoop(t) : await tempRoot(t);
  if (!root) return null;
  const agent = await startNodeAgent(t, root);
  return connectRemoteVolumeDriver({ url: agent.url, token: agent.token });
}

for (const kind of ['dir', 'btrfs'] as const) {
  test(`${kind}: a volume moves from one agent's root to another's through the mover; a truncated final send rolls back`, async (t) => {
    const a = await agentRoot(t, kind);
    const b = a && (await agentRoot(t, kind));
    if (!a || !b) return;
    const cp = await createControlPlane(t, { health: false });
    await cp.deploy(echoManifest('keeper', { port: 19451, count: 1 }));
    const roots = createVolumeRoots(new Map([['default', a], ['b', b]]));
    const service = createVolumeService({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, driver: a, roots, nodeId: 'node_local', log: cp.logs.log, enqueue: () => undefined });
    const mover = (fault?: { kind: 'truncate'; bytes: number }) =>
      createVolumeMover({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, service, log: cp.logs.log, enqueue: () => undefined, startWaitMs: 1_000, fault });

    const volume = await service.create(cp.auth, 'keeper', 'data', null);
    await writeFile(join(a.volumePath(volume.id), 'big'), Buffer.alloc(300_000, 5));
    await writeFile(join(a.volumePath(volume.id), 'log'), '1\n2\n');

    // The final send cut at 64 bytes: the receive on the target fails, the move rolls back.
    await assert.rejects(mover({ kind: 'truncate', bytes: 64 }).move(cp.auth, 'keeper', 'data', 'b'), { code: 'E_VOLUME_DRIVER' });
    const [rolledBack] = await cp.db.select().from(volumes).where(eq(volumes.id, volume.id));
    assert.equal(rolledBack?.root, 'default');
    assert.equal(rolledBack?.state, 'ready');
    assert.equal(await b.exists(volume.id), false, 'the target keeps no volume');
    assert.deepEqual(await readdir(join(b.root, 'snapshots')).catch(() => []), [], 'nor any snapshot');

    await appendFile(join(a.volumePath(volume.id), 'log'), '3\n');
    const before = await treeHash(a.volumePath(volume.id));
    const result = await mover().move(cp.auth, 'keeper', 'data', 'b');
    assert.equal(result.move.state, 'moved');
    assert.equal(result.volume.root, 'b');
    assert.ok((result.move.bytesMoved ?? 0) > 300_000);
    assert.deepEqual(await treeHash(b.volumePath(volume.id)), before, 'the target volume holds the data');
    // The verify step compared the agents' fingerprints: the final snapshot on b came from a's.
    const finalId = `${result.move.id}-final`;
    assert.equal(await b.receivedFingerprint(finalId), await a.fingerprint(finalId));
    assert.ok(await a.exists(volume.id), 'the source is kept (read-only) until the retention ends');
  });

  test(`${kind}: two volumes of one process move together (--group); a truncated send of one rolls both back`, async (t) => {
    const a = await agentRoot(t, kind);
    const b = a && (await agentRoot(t, kind));
    if (!a || !b) return;
    const cp = await createControlPlane(t, { health: false });
    await cp.deploy(echoManifest('pair', { port: 19452, count: 1 }));
    const roots = createVolumeRoots(new Map([['default', a], ['b', b]]));
    const service = createVolumeService({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, driver: a, roots, nodeId: 'node_local', log: cp.logs.log, enqueue: () => undefined });
    const mover = (fault?: { kind: 'truncate'; bytes: number }) =>
      createVolumeMover({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, service, log: cp.logs.log, enqueue: () => undefined, startWaitMs: 1_000, fault });
    const data = await service.create(cp.auth, 'pair', 'data', null);
    const conf = await service.create(cp.auth, 'pair', 'conf', null);
    const ids = [data.id, conf.id];
    // Both of process web, as [[volumes]] entries make them.
    await cp.db.update(volumes).set({ process: 'web' }).where(inArray(volumes.id, ids));
    await writeFile(join(a.volumePath(data.id), 'big'), Buffer.alloc(300_000, 5));
    await writeFile(join(a.volumePath(conf.id), 'conf'), 'x = 1\n');
    const rows = async () => (await cp.db.select().from(volumes).where(inArray(volumes.id, ids))).sort((x, y) => x.name.localeCompare(y.name));

    await assert.rejects(mover({ kind: 'truncate', bytes: 64 }).move(cp.auth, 'pair', 'data', 'b', { group: true }), { code: 'E_VOLUME_DRIVER' });
    assert.deepEqual((await rows()).map((v) => [v.name, v.root, v.state]), [['conf', 'default', 'ready'], ['data', 'default', 'ready']], 'both stay on the source');
    const failed = await cp.db.select().from(volumeMoves).where(inArray(volumeMoves.volumeId, ids));
    assert.deepEqual(failed.map((m) => m.state).sort(), ['rolled-back', 'rolled-back']);
    for (const id of ids) assert.equal(await b.exists(id), false, 'the target keeps no volume');
    assert.deepEqual(await readdir(join(b.root, 'snapshots')).catch(() => []), [], 'nor any snapshot');

    const before = await Promise.all(ids.map((id) => treeHash(a.volumePath(id))));
    const result = await mover().move(cp.auth, 'pair', 'data', 'b', { group: true });
    assert.deepEqual(result.group.map((g) => [g.volume.name, g.volume.root, g.move.state]), [['data', 'b', 'moved'], ['conf', 'b', 'moved']]);
    assert.deepEqual(await Promise.all(ids.map((id) => treeHash(b.volumePath(id)))), before, 'the target volumes hold the data');
    // Alone, on the same root: nothing to move.
    await assert.rejects(mover().move(cp.auth, 'pair', 'conf', 'b', { group: true }), { code: 'E_VOLUME_SAME_ROOT' });
  });
}
