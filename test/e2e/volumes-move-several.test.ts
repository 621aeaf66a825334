// A move of one volume of a process that mounts several (btrfs roots on a loop file of the test's
// own, a real `pier server` and Docker): the target instance is made ahead with the moved volume
// on its new root and the others where they are, and started by the move; every volume of the
// process is attached to it afterwards, the moved one's counter (every 10 ms) is gap-free and
// starts with the final snapshot, and the other volume kept its data. Then the second volume
// moves too, the first one (now on the other root) mounted where it is. Then both move back
// together (--group): held at verify and the server killed, the restarted server rolls both back;
// then the group move goes through: one cutover, and both are switched at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MoveView, VolumeView } from '../../api/volumes/volume-views.js';
import type { EventView, StatusView } from '../../api/views.js';
import { btrfsLoop } from '../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer, pierJson } from '../support/pier-process.js';
import { COUNTER_WRITER, counter, waitFor } from '../support/volume-counter.js';
import { removeAppContainersAndVolumes } from '../support/containers.js';

const exec = promisify(execFile);

const manifest = (image: string) => `
app = "kv"
image = "${image}"

[processes.db]
cmd = ["sh", "-c", ${JSON.stringify(`echo up >> /conf/ups; ${COUNTER_WRITER}`)}]

[[volumes]]
name = "data"
process = "db"
path = "/data"

[[volumes]]
name = "conf"
process = "db"
path = "/conf"

[deploy]
drain = "100ms"
timeout = "60s"
`;

const pier = pierJson;

test('volumes move of a process with several volumes: the target is made ahead with the others where they are, and holds them all after; with --group a killed server rolls both back, then both move at once', async (t) => {
  if (!(await requireDocker(t))) return;
  let appId: string | null = null;
  let server: PierServer | null = null;
  t.after(async () => {
    await server?.stop();
    if (!appId) return;
    await removeAppContainersAndVolumes(appId);
  });
  const base = await btrfsLoop(t);
  if (!base) return;
  const src = join(base, 'a');
  const dst = join(base, 'b');
  for (const root of [src, dst]) await exec('btrfs', ['subvolume', 'create', root]);
  const image = await ensureBusyboxImage();
  const roots = { PIER_VOLUMES_DIR: src, PIER_VOLUME_DRIVER: 'btrfs', PIER_VOLUME_ROOTS: `b=${dst}` };
  let s = await startPierServer(t, roots);
  server = s;
  const file = join(s.dir, 'pier.toml');
  await writeFile(file, manifest(image));
  const deployed = await runPier(['deploy', '-c', file], s.env);
  assert.equal(deployed.code, 0, `${deployed.stderr}\n${s.stderr().slice(-3000)}`);
  appId = (await pier<StatusView>(s, ['status', '--app', 'kv'])).app.id;
  const list = async () => new Map((await pier<{ volumes: VolumeView[] }>(s, ['volumes', 'list', '--app', 'kv'])).volumes.map((v) => [v.name, v]));
  const before = await list();
  const data = before.get('data') as VolumeView;
  const conf = before.get('conf') as VolumeView;
  assert.ok(data && conf);
  const lines = async (root: string) => counter(await readFile(join(root, 'volumes', data.id, 'log'), 'utf8'), `the log on ${root}`);
  await waitFor('the writer on the source', async () => ((await lines(src)) > 20 ? true : null));

  const moves = async () => (await pier<EventView[]>(s, ['events', '--app', 'kv'])).filter((e) => e.type === 'volume.moved');
  /** The instance the volumes are attached to now; asserts they all are, and that its container mounts each where it is. */
  const holds = async (where: Record<string, string>): Promise<string> => {
    const now = await list();
    const holder = now.get('data')?.attachedInstance;
    assert.ok(holder, 'data is attached');
    for (const [name, root] of Object.entries(where)) {
      assert.equal(now.get(name)?.root, root, `${name} is on ${root}`);
      assert.equal(now.get(name)?.attachedInstance, holder, `${name} is attached to the instance that runs`);
    }
    const status = await pier<StatusView>(s, ['status', '--app', 'kv']);
    const running = status.instances.filter((i) => i.desired === 'running');
    assert.deepEqual(
      running.map((i) => i.id),
      [holder],
      'one instance runs, and it holds the volumes',
    );
    const mounts = JSON.parse((await exec('docker', ['inspect', '-f', '{{json .Mounts}}', running[0]?.containerId as string])).stdout) as { Name: string; Destination: string }[];
    const named = (name: string) => (where[name] === 'default' ? `pier-${now.get(name)?.id}` : `pier-${now.get(name)?.id}-${where[name]}`);
    assert.deepEqual(
      mounts.map((m) => `${m.Destination}=${m.Name}`).sort(),
      [`/conf=${named('conf')}`, `/data=${named('data')}`],
    );
    return holder;
  };
  const first = await waitFor('the volumes held by the first instance', () => holds({ data: 'default', conf: 'default' }).catch(() => null));

  // 1. data moves to b; conf stays on default and is mounted there by the target made ahead.
  const moved = await pier<{ volume: VolumeView; move: MoveView }>(s, ['volumes', 'move', '--app', 'kv', 'data', '--to', 'b']);
  t.diagnostic(`move 1: ${JSON.stringify(moved.move)}`);
  assert.equal(moved.move.state, 'moved');
  const [event] = await moves();
  assert.equal(event?.data.madeAhead, true, `the target was made ahead: ${event?.message}`);
  const second = await waitFor('the volumes held by the target', () => holds({ data: 'b', conf: 'default' }).catch(() => null));
  assert.notEqual(second, first);
  const finalText = await readFile(join(src, 'snapshots', `${moved.move.id}-final`, 'log'), 'utf8');
  const onTarget = await waitFor('the writer on the target', async () => {
    const text = await readFile(join(dst, 'volumes', data.id, 'log'), 'utf8');
    return counter(text, 'the target') > counter(finalText, 'the final snapshot') + 20 ? text : null;
  });
  assert.ok(onTarget.startsWith(finalText), "the target starts with exactly the final snapshot's data");
  assert.equal(await readFile(join(src, 'volumes', conf.id, 'ups'), 'utf8'), 'up\nup\n', 'conf kept its data and was mounted by the target');

  // 2. conf moves to b too; data (on b now) is mounted where it is.
  const again = await pier<{ volume: VolumeView; move: MoveView }>(s, ['volumes', 'move', '--app', 'kv', 'conf', '--to', 'b']);
  assert.equal(again.move.state, 'moved');
  const events = await moves();
  assert.equal(events.length, 2);
  assert.ok(events.every((e) => e.data.madeAhead === true), JSON.stringify(events.map((e) => e.message)));
  const third = await waitFor('the volumes held by the second target', () => holds({ data: 'b', conf: 'b' }).catch(() => null));
  assert.notEqual(third, second);
  assert.equal(await readFile(join(dst, 'volumes', conf.id, 'ups'), 'utf8'), 'up\nup\nup\n');
  const past = counter(onTarget, 'the target');
  await waitFor('the writer on, gap-free', async () => ((await lines(dst)) > past + 20 ? true : null));

  // 3. Both back to default with --group, held once every final copy is sent (at verify) and the
  // server killed: the restarted server rolls both back, and the process runs on b again, gap-free.
  await s.stop();
  const first1 = s;
  const restart = (fault?: string) =>
    startPierServer(t, { ...roots, ...(fault ? { PIER_VOLUME_MOVE_FAULT: fault } : {}), PIER_DATA_DIR: join(first1.dir, 'data'), XDG_CONFIG_HOME: join(first1.dir, 'config') }, { databaseUrl: first1.databaseUrl });
  const holding = await restart('hold:verify');
  s = holding;
  server = holding;
  await waitFor('the instance back after the restart', () => holds({ data: 'b', conf: 'b' }).catch(() => null));
  const held = runPier(['volumes', 'move', '--app', 'kv', 'data', '--to', 'default', '--group', '--json'], holding.env, { timeoutMs: 120_000 });
  await waitFor('the group move to hold at verify', async () => (holding.stderr().includes('the move holds here') ? true : null), 600);
  const apiPid = holding.apiPid();
  process.kill(holding.pid, 'SIGKILL');
  if (apiPid !== holding.pid) process.kill(apiPid, 'SIGKILL');
  assert.notEqual((await held).code, 0, 'the held move did not answer success');
  const stoppedAt = await lines(dst);
  s = await restart();
  server = s;
  const failed = await waitFor('both moves rolled back', async () => {
    const events = (await pier<EventView[]>(s, ['events', '--app', 'kv'])).filter((e) => e.type === 'volume.move_failed');
    return events.length === 2 ? events : null;
  });
  assert.ok(failed.every((e) => /server restarted/.test(e.message)), JSON.stringify(failed.map((e) => e.message)));
  await waitFor('the volumes held on b again', () => holds({ data: 'b', conf: 'b' }).catch(() => null));
  await waitFor('the writer on b from where it stopped', async () => ((await lines(dst)) > stoppedAt + 20 ? true : null));
  assert.deepEqual((await readdir(join(src, 'snapshots')).catch(() => [])).filter((n) => n.endsWith('-final')), [], 'no copy of the held moves is left on default');

  // 4. Both back to default with --group: one cutover, both switched, one new instance holds them.
  const both = await pier<{ volume: VolumeView; move: MoveView; group: { volume: VolumeView; move: MoveView }[] }>(s, ['volumes', 'move', '--app', 'kv', 'data', '--to', 'default', '--group']);
  t.diagnostic(`group move: ${JSON.stringify(both.group.map((g) => g.move))}`);
  assert.deepEqual(both.group.map((g) => [g.volume.name, g.volume.root, g.move.state, g.move.from]), [
    ['data', 'default', 'moved', 'b'],
    ['conf', 'default', 'moved', 'b'],
  ]);
  assert.equal(both.volume.name, 'data', 'the named volume comes first');
  const fourth = await waitFor('the volumes held by the instance on default', () => holds({ data: 'default', conf: 'default' }).catch(() => null));
  assert.notEqual(fourth, third);
  const groupFinal = await readFile(join(dst, 'snapshots', `${both.move.id}-final`, 'log'), 'utf8');
  const back = await waitFor('the writer on default again', async () => {
    const text = await readFile(join(src, 'volumes', data.id, 'log'), 'utf8');
    return counter(text, 'default again') > counter(groupFinal, 'the group final snapshot') + 20 ? text : null;
  });
  assert.ok(back.startsWith(groupFinal), "data on default starts with exactly the group's final snapshot");
  const upsOnB = await readFile(join(dst, 'volumes', conf.id, 'ups'), 'utf8');
  assert.ok(upsOnB.startsWith('up\nup\nup\nup\n'), upsOnB);
  assert.equal(await readFile(join(src, 'volumes', conf.id, 'ups'), 'utf8'), `${upsOnB}up\n`, 'conf came back with its data (the source on b, frozen at the final snapshot), and one more start');
  assert.equal(counter(await readFile(join(dst, 'volumes', data.id, 'log'), 'utf8'), 'the source on b'), counter(groupFinal, 'the final snapshot'), 'the source on b holds nothing past the final snapshot');
  const there = await runPier(['volumes', 'move', '--app', 'kv', 'conf', '--to', 'default', '--group'], s.env);
  assert.notEqual(there.code, 0);
  assert.match(there.stderr, /E_VOLUME_SAME_ROOT/);
});
