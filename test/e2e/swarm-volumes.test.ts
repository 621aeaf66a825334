// Volumes on a two-node Docker Swarm (test/support/swarm-cluster.ts), end to end: the worker runs
// `pier agent` over a storage root of its own (the manager has none, so only the worker can hold a
// volume); `pier server --runtime swarm --node-agent WORKER=URL` makes the volume there through the
// agent and pins the writer's service to the worker. A counter writer
// (test/support/volume-counter.ts) keeps every line across a redeploy (its old task stops before
// the new one starts), and a snapshot taken through the agent restores in place without a gap; the
// agent exports it, and deletes the volume with a final snapshot once no task runs on it, and
// undeletes it there. A preview seeded from the snapshot gets its volume on the snapshot's node,
// and its writer runs there. Then the manager gets an agent too (its own root), and `pier volumes
// move` takes the volume with its writer from the worker to the manager: the data goes agent to
// agent through the API server, the writer's service is scaled to zero for the cutover and pinned
// to the manager after it, and no line is lost. Then per-instance volumes of a process deployed
// with none, then two, then three, tasks: a volume per slot, made at the first scale up, on the
// worker, each task writing only its own, each slot's data back after a redeploy, a scale up
// restarting no task, one slot's volume refused a move alone, and all of them moved together to the
// manager (--group), each slot's data whole. The nodes' engines share this machine's files, so the
// test reads the agents' roots directly; the API server never does (it asks the agents).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusView } from '../../api/views.js';
import type { SnapshotView, VolumeView } from '../../api/volumes/volume-views.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { startNodeAgent } from '../support/node-agent.js';
import { runPier, startPierServer, pierJson } from '../support/pier-process.js';
import { requireNamespaces, startSwarmCluster } from '../support/swarm-cluster.js';
import { COUNTER_WRITER, counter, oneVolumeManifest, waitFor } from '../support/volume-counter.js';

const IMAGE = 'pier-test/busybox:1';

const manifest = (image: string, version: string) => oneVolumeManifest({ app: 'swv', image, script: COUNTER_WRITER, version, timeout: '90s' });

const slotsManifest = (image: string, version: string, count: number) => `
app = "swp"
image = "${image}"

[processes.db]
cmd = ["sh", "-c", ${JSON.stringify(COUNTER_WRITER)}]
env = { VERSION = "${version}" }
count = ${count}

[[volumes]]
name = "data"
process = "db"
path = "/data"
per_instance = true

[deploy]
drain = "100ms"
timeout = "90s"
`;

const pier = pierJson;

test('on a swarm: a volume is made on the node whose agent holds it, its writer is pinned there, keeps every line across a redeploy, and restores in place gap-free; per-instance volumes give each task its slot\'s own', async (t) => {
  if (!(await requireDocker(t)) || !(await requireNamespaces(t))) return;
  if (process.env.DATABASE_URL && process.env.PIER_SWARM_E2E_POSTGRES !== '1') {
    t.skip('the swarm runs on the embedded-database pass only (CI time)');
    return;
  }
  const image = await ensureBusyboxImage();
  const cluster = await startSwarmCluster(t, { images: [IMAGE] });
  const root = await mkdtemp(join(tmpdir(), 'pier-swvol-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const agent = await startNodeAgent(t, root);
  // The manager's agent, listed second: a new volume goes to the first node with an agent (the worker).
  const managerRoot = await mkdtemp(join(tmpdir(), 'pier-swvol-manager-'));
  t.after(() => rm(managerRoot, { recursive: true, force: true }));
  const managerAgent = await startNodeAgent(t, managerRoot, [], { token: agent.token });
  const server = await startPierServer(
    t,
    {
      DOCKER_HOST: cluster.manager.host,
      PIER_RUNTIME: 'swarm',
      // The worker's engine: a dir-driver snapshot pauses the writer there.
      PIER_SWARM_NODE_ENGINES: `${cluster.worker.address}=${cluster.worker.host},${cluster.manager.address}=${cluster.manager.host}`,
      PIER_NODE_AGENTS: `${cluster.worker.address}=${agent.url},${cluster.manager.address}=${managerAgent.url}`,
      PIER_NODE_AGENT_TOKEN_FILE: agent.tokenFile,
      PIER_EDGE_IPV4: '0.0.0.0',
      PIER_EDGE_IPV6: 'off',
    },
    { args: ['--role', 'api'] },
  );
  const file = join(server.dir, 'pier.toml');
  const logOf = (id: string) => readFile(join(root, 'volumes', id, 'log'), 'utf8');
  // What Swarm and the engines say, for a failure's message: the services' tasks with their
  // errors, every container on the worker, the worker's volumes and engine log, the app's last
  // events, and the server's last lines.
  const swarmState = async () => {
    const tasks = await cluster.manager.docker(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}', ...(await cluster.manager.docker(['service', 'ls', '-q'])).split('\n').filter(Boolean)]).catch((e: Error) => e.message);
    const containers = await cluster.worker.docker(['ps', '-a', '--format', '{{.Names}} {{.Status}}']).catch((e: Error) => e.message);
    const dockerVolumes = await cluster.worker.docker(['volume', 'ls', '--format', '{{.Name}}']).catch((e: Error) => e.message);
    const events = await runPier(['events', '--app', 'swv'], server.env).then((r) => r.stdout.split('\n').slice(-15).join('\n'));
    return `tasks:\n${tasks}\nworker containers:\n${containers}\nworker volumes:\n${dockerVolumes}\nworker engine log:\n${await cluster.worker.engineLog(40)}\napp events:\n${events}\nserver log:\n${server.stderr().slice(-4000)}`;
  };
  const startsOf = async (id: string) => (await readFile(join(root, 'volumes', id, 'starts'), 'utf8')).trim().split('\n');

  await writeFile(file, manifest(image, '1'));
  const first = await runPier(['deploy', '-c', file], server.env);
  assert.equal(first.code, 0, `${first.stderr}\n${server.stderr().slice(-3000)}`);
  const running = await waitFor('the writer to run', async () => {
    const s = await pier<StatusView>(server, ['status', '--app', 'swv']);
    return s.instances.find((i) => i.state === 'running' && i.desired === 'running') ?? null;
  }, 900);
  assert.equal(running.address, cluster.worker.address, 'the writer runs on the node that holds its volume');
  // The reconciler made the volume through the worker's agent before it made the service.
  const { volumes } = await pier<{ volumes: VolumeView[] }>(server, ['volumes', 'list', '--app', 'swv']);
  assert.equal(volumes.length, 1);
  const vol = volumes[0] as VolumeView;
  // The service is pinned to the worker, and the worker's engine binds the agent's directory.
  const services = (await cluster.manager.docker(['service', 'ls', '--format', '{{.Name}}'])).split('\n').filter(Boolean);
  assert.equal(services.length, 1);
  const workerId = (await cluster.worker.docker(['info', '--format', '{{.Swarm.NodeID}}'])).trim();
  const constraints = (await cluster.manager.docker(['service', 'inspect', services[0] as string, '--format', '{{json .Spec.TaskTemplate.Placement.Constraints}}'])).trim();
  assert.deepEqual(JSON.parse(constraints), [`node.id==${workerId}`]);
  const bound = JSON.parse(await cluster.worker.docker(['volume', 'inspect', `pier-${vol.id}-node-${cluster.worker.address}`])) as { Labels: Record<string, string>; Options: Record<string, string> }[];
  assert.equal(bound[0]?.Options.device, join(root, 'volumes', vol.id));
  assert.equal(bound[0]?.Labels['dev.pier.volume'], vol.id);

  const before = await waitFor('the writer to write 30 lines', async () => {
    const n = counter(await logOf(vol.id), 'before the redeploy');
    return n >= 30 ? n : null;
  }, 300);

  // A redeploy: the old task stops before the new one starts, and the new one goes on from the last line.
  await writeFile(file, manifest(image, '2'));
  const second = await runPier(['deploy', '-c', file], server.env);
  assert.equal(second.code, 0, `${second.stderr}\n${server.stderr().slice(-3000)}`);
  await waitFor('the redeployed writer to start', async () => ((await startsOf(vol.id)).length === 2 ? true : null), 900);
  let lastError = '';
  const after = await waitFor('the new writer to write on', async () => {
    try {
      const n = counter(await logOf(vol.id), 'after the redeploy');
      return n > before + 10 ? n : null;
    } catch (err) {
      lastError = `${(err as Error).message}; starts: ${(await startsOf(vol.id)).join(', ')}`;
      throw err;
    }
  }, 300).catch((err: Error) => assert.fail(`${err.message}: ${lastError}`));
  assert.ok(Number((await startsOf(vol.id))[1]?.split(' ')[1]) >= before, 'the redeployed writer resumed from the data it found');
  const holder = await waitFor('the new writer to hold the volume', async () => {
    const s = await pier<StatusView>(server, ['status', '--app', 'swv']);
    const r = s.instances.find((i) => i.state === 'running' && i.desired === 'running');
    return r && r.id !== running.id ? r : null;
  }, 300);
  assert.equal(holder.address, cluster.worker.address);

  // A snapshot through the agent while it writes (the dir driver pauses the writer on the worker).
  const snap = await pier<SnapshotView>(server, ['volumes', 'snapshot', '--app', 'swv', 'data']);
  assert.match(snap.id, /^snap_/);
  const snapText = await readFile(join(root, 'snapshots', snap.id, 'log'), 'utf8');
  const snapLines = counter(snapText, 'the snapshot');
  assert.ok(snapLines >= after);
  await waitFor('more lines after the snapshot', async () => (counter(await logOf(vol.id), 'after the snapshot') > snapLines + 10 ? true : null), 300);

  // Restore in place: the writer's service is scaled to zero, the data swapped, the writer starts again.
  const restored = await pier<{ volume: VolumeView; preRestoreSnapshot: SnapshotView }>(server, ['volumes', 'restore', '--app', 'swv', snap.id, '--in-place', '--yes']);
  assert.equal(restored.preRestoreSnapshot.consistency, 'stopped');
  const preLines = counter(await readFile(join(root, 'snapshots', restored.preRestoreSnapshot.id, 'log'), 'utf8'), 'the pre-restore snapshot');
  assert.ok(preLines > snapLines + 10);
  const resumed = await waitFor('the writer to write on from the snapshot', async () => {
    const text = await logOf(vol.id);
    return counter(text, 'after the restore') > snapLines + 5 ? text : null;
  }, 900);
  assert.ok(resumed.startsWith(snapText), "the restored volume starts with exactly the snapshot's data");
  const starts = await startsOf(vol.id);
  assert.equal(starts.length, 3, starts.join(', '));
  assert.equal(starts[2], `start ${snapLines}`);
  const final = await pier<StatusView>(server, ['status', '--app', 'swv']);
  assert.ok(final.instances.filter((i) => i.state === 'running').every((i) => i.address === cluster.worker.address));

  // Restored into a new volume: on the same node's root, by its agent.
  assert.equal(vol.root, `node:${cluster.worker.address}`);
  const { volume: copy } = await pier<{ volume: VolumeView }>(server, ['volumes', 'restore', '--app', 'swv', snap.id, '--name', 'copy']);
  assert.equal(copy.root, vol.root);
  assert.equal(await readFile(join(root, 'volumes', copy.id, 'log'), 'utf8'), snapText);

  // A preview seeded from that snapshot: its volume is made on the snapshot's node (by its agent)
  // from the snapshot's data, and the preview's writer is pinned there and writes on from it.
  const previewFile = join(server.dir, 'preview.toml');
  await writeFile(previewFile, `${manifest(image, '2')}\n[env.preview.volumes.data]\nfrom = "snapshot:production/data@${snap.id}"\n`);
  const seededDeploy = await runPier(['deploy', '-c', previewFile], { ...server.env, PIER_ENV: 'pr-3' });
  assert.equal(seededDeploy.code, 0, `${seededDeploy.stderr}\n${server.stderr().slice(-3000)}`);
  const previewEnv = { ...server.env, PIER_ENV: 'pr-3' };
  const seeded = await waitFor('the seeded preview volume', async () => {
    const r = await runPier(['volumes', 'list', '--app', 'swv', '--json'], previewEnv);
    return r.code === 0 ? ((JSON.parse(r.stdout) as { volumes: VolumeView[] }).volumes[0] ?? null) : null;
  }, 300);
  assert.equal(seeded.root, vol.root, "the seed is made on the snapshot's node");
  assert.notEqual(seeded.id, vol.id);
  const previewWriter = await waitFor('the preview writer to run', async () => {
    const r = await runPier(['status', '--app', 'swv', '--json'], previewEnv);
    return r.code === 0 ? ((JSON.parse(r.stdout) as StatusView).instances.find((i) => i.state === 'running' && i.desired === 'running') ?? null) : null;
  }, 900);
  assert.equal(previewWriter.address, cluster.worker.address, 'the preview runs where its seeded volume is');
  const seededText = await waitFor('the preview writer to write on from the snapshot', async () => {
    const text = await readFile(join(root, 'volumes', seeded.id, 'log'), 'utf8');
    return counter(text, 'the seeded preview') > snapLines + 5 ? text : null;
  }, 900);
  assert.ok(seededText.startsWith(snapText), "the preview's volume starts with exactly the snapshot's data");
  const destroyed = await runPier(['env', 'destroy', 'pr-3', '--yes'], previewEnv);
  assert.equal(destroyed.code, 0, destroyed.stderr);

  // Export: the agent makes the portable file; read back (imported here), it has the snapshot's sha256.
  const exported = join(server.dir, 'data.pier-snapshot');
  const ex = await runPier(['volumes', 'export', '--app', 'swv', snap.id, '-o', exported], server.env);
  assert.equal(ex.code, 0, ex.stderr);
  const imported = await pier<SnapshotView>(server, ['volumes', 'import', '--app', 'swv', exported]);
  assert.equal(imported.sha256, snap.sha256);

  // With no task on it, the volume is deleted with a final snapshot on its node, and brought back there.
  const scaled = await runPier(['scale', 'db=0', '--app', 'swv'], server.env);
  assert.equal(scaled.code, 0, scaled.stderr);
  let refusal = '';
  const gone = await waitFor('the volume to be deleted', async () => {
    const r = await runPier(['volumes', 'delete', '--app', 'swv', 'data', '--yes', '--json'], server.env);
    refusal += `exit ${r.code}: ${r.stderr}\n`;
    return r.code === 0 ? (JSON.parse(r.stdout) as { volume: VolumeView; finalSnapshot: SnapshotView }) : null;
  }, 120).catch((err: Error) => assert.fail(`${err.message}: ${refusal}\nserver log:\n${server.stderr().slice(-3000)}`));
  assert.equal(gone.finalSnapshot.kind, 'final');
  // The worker's engine keeps no Docker volume binding the deleted folder.
  const left = (await cluster.worker.docker(['volume', 'ls', '-q'])).split('\n').filter((n) => n.includes(vol.id));
  assert.deepEqual(left, [], `the Docker volume on the node went with the volume; server log: ${server.stderr().split('\n').filter((l) => /not removed|volume/.test(l)).slice(-10).join('\n')}`);
  assert.equal(gone.finalSnapshot.consistency, 'stopped');
  const finalLines = counter(await readFile(join(root, 'snapshots', gone.finalSnapshot.id, 'log'), 'utf8'), 'the final snapshot');
  assert.ok(finalLines > snapLines + 5);
  const back = await pier<{ volume: VolumeView }>(server, ['volumes', 'undelete', '--app', 'swv', 'data']);
  assert.equal(back.volume.id, vol.id);
  assert.equal(counter(await logOf(vol.id), 'after undelete'), finalLines);

  // A move to the manager's root, with the writer running: pre-copy while it writes, then its
  // service is scaled to zero, the rest sent and checked, and the writer runs on the manager.
  const rescaled = await runPier(['scale', 'db=1', '--app', 'swv'], server.env);
  assert.equal(rescaled.code, 0, rescaled.stderr);
  const beforeMove = await waitFor('the writer to write on before the move', async () => {
    const n = counter(await logOf(vol.id), 'before the move');
    return n > finalLines + 20 ? n : null;
  }, 900).catch(async (err: Error) => assert.fail(`${err.message}\n${await swarmState()}`));
  const moved = await runPier(['volumes', 'move', '--app', 'swv', 'data', '--to', `node:${cluster.manager.address}`, '--json'], server.env);
  assert.equal(moved.code, 0, `${moved.stderr}\nserver log:\n${server.stderr().slice(-4000)}`);
  const m = JSON.parse(moved.stdout) as { move: { from: string; to: string; bytesMoved: number; downtimeMs: number | null; phases: { phase: string; ms: number }[] }; volume: VolumeView };
  t.diagnostic(`moved between nodes: ${m.move.bytesMoved} bytes, downtime ${m.move.downtimeMs ?? '-'} ms; phases ${m.move.phases.map((p) => `${p.phase} ${p.ms} ms`).join(', ')}`);
  assert.equal(m.move.from, `node:${cluster.worker.address}`);
  assert.equal(m.volume.root, `node:${cluster.manager.address}`);
  const movedLog = (id: string) => readFile(join(managerRoot, 'volumes', id, 'log'), 'utf8');
  const onManager = await waitFor('the writer to run on the manager', async () => {
    const s = await pier<StatusView>(server, ['status', '--app', 'swv']);
    return s.instances.find((i) => i.state === 'running' && i.desired === 'running' && i.address === cluster.manager.address) ?? null;
  }, 900);
  assert.ok(onManager);
  const managerId = (await cluster.manager.docker(['info', '--format', '{{.Swarm.NodeID}}'])).trim();
  const nowServices = (await cluster.manager.docker(['service', 'ls', '--format', '{{.Name}}'])).split('\n').filter(Boolean);
  assert.equal(nowServices.length, 1, nowServices.join(' '));
  const pinned = (await cluster.manager.docker(['service', 'inspect', nowServices[0] as string, '--format', '{{json .Spec.TaskTemplate.Placement.Constraints}}'])).trim();
  assert.deepEqual(JSON.parse(pinned), [`node.id==${managerId}`], 'the group now runs where its volume is');
  // Every line the worker wrote is on the manager, and the writer goes on from the last one.
  const sourceText = await logOf(vol.id);
  const sourceLines = counter(sourceText, 'the source after the move');
  assert.ok(sourceLines >= beforeMove);
  const afterMove = await waitFor('the moved writer to write on', async () => {
    const text = await movedLog(vol.id);
    return counter(text, 'on the manager') > sourceLines + 10 ? text : null;
  }, 900);
  assert.ok(afterMove.startsWith(sourceText), 'the manager holds exactly what the worker wrote, then more');
  const movedStarts = (await readFile(join(managerRoot, 'volumes', vol.id, 'starts'), 'utf8')).trim().split('\n');
  assert.equal(movedStarts.at(-1), `start ${sourceLines}`);

  // Per-instance volumes of a process with several instances: a volume per slot, all on the node
  // that holds the first (the worker: its agent is listed first), each task mounting its slot's
  // (one templated mount: Swarm's slot N binds slot N - 1's volume). Each log is exactly 1..N, so
  // no two tasks ever wrote one volume; a redeploy gives each slot its own data back; a scale up
  // makes the new slot's volume and restarts no task; moving one slot's volume alone is refused,
  // and --group moves them all.
  const slotsFile = join(server.dir, 'slots.toml');
  // Deployed at count 0 first: its service is made with no task, and no volume; the scale up
  // makes the slots' volumes and gives the service its mount and pin.
  await writeFile(slotsFile, slotsManifest(image, '1', 0));
  const sd = await runPier(['deploy', '-c', slotsFile], server.env);
  assert.equal(sd.code, 0, `${sd.stderr}\n${server.stderr().slice(-3000)}`);
  const slotVolumes = async () => (await pier<{ volumes: VolumeView[] }>(server, ['volumes', 'list', '--app', 'swp'])).volumes.sort((a, b) => a.name.localeCompare(b.name));
  const zeroService = await waitFor('the count-0 service', async () => {
    const names = (await cluster.manager.docker(['service', 'ls', '--format', '{{.Name}} {{.Replicas}}'])).split('\n').filter((l) => l.includes('swp'));
    return names.length === 1 ? (names[0] as string) : null;
  }, 300).catch(async (err: Error) => assert.fail(`${err.message}\n${await swarmState()}`));
  assert.match(zeroService, / 0\/0$/);
  assert.deepEqual(await slotVolumes(), [], 'a group with no task makes no volume');
  const scaledUp = await runPier(['scale', 'db=2', '--app', 'swp'], server.env);
  assert.equal(scaledUp.code, 0, scaledUp.stderr);
  const two = await waitFor('two slot volumes', async () => {
    const v = await slotVolumes();
    return v.length === 2 ? v : null;
  }, 900);
  const [v0, v1] = two as [VolumeView, VolumeView];
  assert.deepEqual([v0.name, v1.name], ['data-0', 'data-1']);
  assert.equal(v1.id, `${v0.id}-s2`, "slot 1's volume is named after slot 0's, as the templated mount finds it");
  assert.ok(two.every((v) => v.root === `node:${cluster.worker.address}`), JSON.stringify(two));
  const slotLog = (id: string) => readFile(join(root, 'volumes', id, 'log'), 'utf8');
  const slotStarts = async (id: string) => (await readFile(join(root, 'volumes', id, 'starts'), 'utf8')).trim().split('\n');
  const written = async (id: string, min: number, what: string) =>
    waitFor(`${what} (${id})`, async () => {
      const n = counter(await slotLog(id), what);
      return n >= min ? n : null;
    }, 900);
  const b0 = await written(v0.id, 20, 'slot 0 writes');
  const b1 = await written(v1.id, 20, 'slot 1 writes');
  const slotStatus = await pier<StatusView>(server, ['status', '--app', 'swp']);
  const runningSlots = slotStatus.instances.filter((i) => i.state === 'running' && i.desired === 'running');
  assert.equal(runningSlots.length, 2);
  assert.ok(runningSlots.every((i) => i.address === cluster.worker.address), 'every task on the node that holds the volumes');

  await writeFile(slotsFile, slotsManifest(image, '2', 2));
  const sr = await runPier(['deploy', '-c', slotsFile], server.env);
  assert.equal(sr.code, 0, `${sr.stderr}\n${server.stderr().slice(-3000)}`);
  for (const [v, before] of [[v0, b0], [v1, b1]] as const) {
    await waitFor(`slot ${v.name} to start again`, async () => ((await slotStarts(v.id)).length === 2 ? true : null), 900);
    await written(v.id, before + 10, `${v.name} after the redeploy`);
    assert.ok(Number((await slotStarts(v.id))[1]?.split(' ')[1]) >= before, `${v.name}: the redeployed task of its slot resumed from its own data`);
  }

  const up = await runPier(['scale', 'db=3', '--app', 'swp'], server.env);
  assert.equal(up.code, 0, up.stderr);
  const three = await waitFor('a third slot volume', async () => {
    const v = await slotVolumes();
    return v.length === 3 ? v : null;
  }, 900);
  const v2 = three[2] as VolumeView;
  assert.equal(v2.name, 'data-2');
  assert.equal(v2.id, `${v0.id}-s3`);
  await written(v2.id, 10, 'slot 2 writes');
  assert.equal((await slotStarts(v0.id)).length, 2, 'a scale up restarts no task');
  assert.equal((await slotStarts(v1.id)).length, 2, 'a scale up restarts no task');

  const split = await runPier(['volumes', 'move', '--app', 'swp', 'data-1', '--to', `node:${cluster.manager.address}`, '--json'], server.env);
  assert.notEqual(split.code, 0);
  assert.match(split.stderr, /E_VOLUME_MOVE_SPLIT/);
  assert.match(split.stderr, /--group/, 'the refusal says how to move them together');
  assert.equal((await slotVolumes()).find((v) => v.name === 'data-1')?.root, `node:${cluster.worker.address}`, 'nothing moved');

  // Together (--group): every slot's volume goes to the manager with one cutover, the tasks follow,
  // and each slot's log on the manager is its worker log, whole, then more.
  const group = await runPier(['volumes', 'move', '--app', 'swp', 'data-1', '--to', `node:${cluster.manager.address}`, '--group', '--json'], server.env);
  assert.equal(group.code, 0, `${group.stderr}\nserver log:\n${server.stderr().slice(-4000)}`);
  const g = JSON.parse(group.stdout) as { group: { volume: VolumeView; move: { id: string; downtimeMs: number | null; bytesMoved: number } }[] };
  t.diagnostic(`moved together: ${g.group.map((x) => `${x.volume.name} ${x.move.bytesMoved} bytes, downtime ${x.move.downtimeMs ?? '-'} ms`).join('; ')}`);
  assert.deepEqual(g.group.map((x) => x.volume.name), ['data-1', 'data-0', 'data-2'], 'the named one first, then the others');
  assert.ok(g.group.every((x) => x.volume.root === `node:${cluster.manager.address}`), JSON.stringify(g.group.map((x) => x.volume)));
  await waitFor('three tasks on the manager', async () => {
    const s = await pier<StatusView>(server, ['status', '--app', 'swp']);
    const up = s.instances.filter((i) => i.state === 'running' && i.desired === 'running');
    return up.length === 3 && up.every((i) => i.address === cluster.manager.address) ? true : null;
  }, 900);
  for (const { volume: v, move } of g.group) {
    const finalText = await readFile(join(root, 'snapshots', `${move.id}-final`, 'log'), 'utf8');
    assert.equal(await slotLog(v.id), finalText, `${v.name}: the worker's copy holds nothing past the final snapshot`);
    const there = await waitFor(`${v.name} written on the manager`, async () => {
      const text = await readFile(join(managerRoot, 'volumes', v.id, 'log'), 'utf8');
      return counter(text, `${v.name} on the manager`) > counter(finalText, 'the final snapshot') + 10 ? text : null;
    }, 900);
    assert.ok(there.startsWith(finalText), `${v.name}: the manager holds exactly the worker's data, then more`);
  }
});
