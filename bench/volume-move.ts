// `npm run bench:volume-move [-- --mib 1024]`: the downtime of `pier volumes move` for a volume of
// 1 GiB (random data, 16 files) with a small final delta (the counter writer appends every 10 ms),
// between two btrfs subvolume roots on a loop file made (and removed) here, through a real
// `pier server` (embedded database) and real Docker. Reference in the same run: stopping and
// starting a plain container (`docker stop` + `docker start`, no Pier), the floor of any
// stop-then-start cutover. Goal (issue 15), not an assertion: downtime <= 1 s. Needs root,
// btrfs-progs and Docker. `--group`: the process has a second volume (/conf, 64 MiB of random data),
// and both move with one cutover (`pier volumes move --group`).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const IMAGE = 'pier-test/busybox:1';
const { values: flags } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, group: { type: 'boolean', default: false } } });
const mib = Number(flags.mib);
const group = flags.group;
const log = (line: string) => process.stderr.write(`${line}\n`);
const WRITER = "trap 'exit 0' TERM; i=$(tail -n 1 /data/log 2>/dev/null); i=${i:-0}; while true; do i=$((i+1)); echo $i >> /data/log; usleep 10000; done";

async function fill(dir: string, size = mib): Promise<void> {
  const files = 16;
  const per = Math.floor((size * 1024 * 1024) / files);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const out = createWriteStream(join(dir, `f${i}.bin`));
    for (let left = per; left > 0; left -= 4 * 1024 * 1024) {
      if (!out.write(randomBytes(Math.min(left, 4 * 1024 * 1024)))) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
  }
  await run('sync');
}

const scratch = await mkdtemp(join(tmpdir(), 'pier-bench-move-'));
const mnt = join(scratch, 'mnt');
let device: string | null = null;
let server: ReturnType<typeof spawn> | null = null;
let appId: string | null = null;
const reference = `pier-bench-move-ref-${process.pid}`;
try {
  await run('docker', ['image', 'inspect', IMAGE]).catch(() => {
    throw new Error(`image ${IMAGE} is missing: run a test that builds it first (test/support/images.ts)`);
  });
  await mkdir(mnt);
  const img = join(scratch, 'fs.img');
  await run('truncate', ['-s', `${Math.ceil((mib * 3) / 1024) + 1}G`, img]);
  await run('mkfs.btrfs', ['-q', img]);
  device = (await run('losetup', ['--find', '--show', img])).stdout.trim();
  await run('mount', [device, mnt]);
  for (const root of ['a', 'b']) await run('btrfs', ['subvolume', 'create', join(mnt, root)]);

  const dir = join(scratch, 'pier');
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), PIER_DATA_DIR: join(dir, 'data'), PIER_VOLUMES_DIR: join(mnt, 'a'), PIER_VOLUME_ROOTS: `b=${join(mnt, 'b')}` };
  delete env.DATABASE_URL;
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  server = spawn(process.execPath, [PIER_BIN, 'server', '--api-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  // Pino's JSON lines: warnings of the move are shown with the table.
  let serverErr = '';
  server.stderr?.on('data', (b: Buffer) => (serverErr = (serverErr + b.toString()).slice(-200_000)));
  server.stdout?.on('data', (b: Buffer) => (serverErr = (serverErr + b.toString()).slice(-200_000)));
  for (let i = 0; !/API on http/.test(out); i++) {
    if (i > 1200) throw new Error(`pier server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pier = async (args: string[]) => JSON.parse((await run(process.execPath, [PIER_BIN, ...args, '--json'], { env, maxBuffer: 16 * 1024 * 1024 })).stdout) as Record<string, unknown>;
  const file = join(dir, 'pier.toml');
  await writeFile(file, `app = "bench-move"\nimage = "${IMAGE}"\n\n[processes.db]\ncmd = ["sh", "-c", ${JSON.stringify(WRITER)}]\n\n[[volumes]]\nname = "data"\nprocess = "db"\npath = "/data"\n\n${group ? '[[volumes]]\nname = "conf"\nprocess = "db"\npath = "/conf"\n\n' : ''}[deploy]\ndrain = "0s"\n`);
  await run(process.execPath, [PIER_BIN, 'deploy', '-c', file], { env });
  appId = ((await pier(['status', '--app', 'bench-move'])).app as { id: string }).id;
  const listed = (await pier(['volumes', 'list', '--app', 'bench-move'])).volumes as { id: string; name: string }[];
  const volume = listed.find((v) => v.name === 'data') as { id: string };
  log(`filling ${mib} MiB`);
  await fill(join(mnt, 'a', 'volumes', volume.id, 'big'));
  const conf = listed.find((v) => v.name === 'conf');
  if (conf) await fill(join(mnt, 'a', 'volumes', conf.id, 'big'), 64);

  // The reference: a plain container stopped and started (same image, same writer, no volume).
  await run('docker', ['run', '-d', '--name', reference, IMAGE, 'sh', '-c', WRITER.replaceAll('/data/', '/tmp/')]);
  const refStart = Date.now();
  await run('docker', ['stop', '-t', '10', reference]);
  await run('docker', ['start', reference]);
  const refMs = Date.now() - refStart;

  // Docker's own clock for the containers of the app: SIGTERM, exit, the new container's create and start.
  const events = spawn('docker', ['events', '--filter', `label=dev.pier.app=${appId}`, '--filter', 'type=container', '--format', '{{.TimeNano}} {{.Action}} {{.ID}}'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let eventText = '';
  events.stdout?.on('data', (b: Buffer) => (eventText += b.toString()));
  await new Promise((r) => setTimeout(r, 500));
  const loadBefore = loadavg()[0] as number;
  const t0 = Date.now();
  const answer = await pier(['volumes', 'move', '--app', 'bench-move', 'data', '--to', 'b', ...(group ? ['--group'] : [])]);
  const moved = answer.move as {
    bytesMoved: number;
    downtimeMs: number | null;
    phases: { phase: string; ms: number }[];
    steps: { step: string; ms: number }[];
  };
  const together = (answer.group as { volume: { name: string; root: string }; move: { bytesMoved: number; downtimeMs: number | null } }[]) ?? [];
  const totalMs = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  events.kill('SIGTERM');
  const docker = eventText
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '))
    .map(([ns, action, id]) => ({ ms: Number(BigInt(ns ?? '0') / 1_000_000n), action: action ?? '', id: (id ?? '').slice(0, 12) }));
  const kill = docker.find((e) => e.action.startsWith('kill'));
  // A second reference: the engine's start of a new container like the moved one (Pier's network,
  // a bind mount), which a stop-then-start cutover cannot go below either.
  const moving = (await run('docker', ['ps', '-q', '--filter', `label=dev.pier.app=${appId}`])).stdout.split('\n').filter(Boolean)[0] ?? '';
  const network = moving ? (await run('docker', ['inspect', '-f', '{{.HostConfig.NetworkMode}}', moving])).stdout.trim() : 'bridge';
  await mkdir(join(scratch, 'ref-data'), { recursive: true });
  await run('docker', ['create', '--name', `${reference}-2`, '--network', network, '--mount', `type=bind,src=${join(scratch, 'ref-data')},dst=/data`, IMAGE, 'sh', '-c', WRITER]);
  const ref2Start = Date.now();
  await run('docker', ['start', `${reference}-2`]);
  const ref2Ms = Date.now() - ref2Start;
  // A third: the same, also joined (before its start, as Pier does) to the app's other networks:
  // its private network, dual-stack.
  const others = moving ? (await run('docker', ['inspect', '-f', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', moving])).stdout.split(' ').map((n) => n.trim()).filter((n) => n && n !== network) : [];
  await run('docker', ['create', '--name', `${reference}-3`, '--network', network, '--mount', `type=bind,src=${join(scratch, 'ref-data')},dst=/data`, IMAGE, 'sh', '-c', WRITER]);
  for (const other of others) await run('docker', ['network', 'connect', other, `${reference}-3`]);
  const ref3Start = Date.now();
  await run('docker', ['start', `${reference}-3`]);
  const ref3Ms = Date.now() - ref3Start;
  const lines = (await readFile(join(mnt, 'b', 'volumes', volume.id, 'log'), 'utf8')).split('\n').filter(Boolean);
  const gapFree = lines.every((l, i) => l === String(i + 1));
  const load = loadavg()[0] as number;

  process.stdout.write(`\n${mib} MiB volume (16 files of random data) + a counter written every 10 ms${group ? ', and a second volume of 64 MiB moved with it (--group)' : ''}; load average ${loadBefore.toFixed(1)} before, ${load.toFixed(1)} after\n\n`);
  process.stdout.write('| step | ms | |\n|---|---:|---|\n');
  process.stdout.write(`| reference: docker stop + docker start of a plain container | ${refMs} | |\n`);
  process.stdout.write(`| reference: docker start of a created container on Pier's network with a bind mount | ${ref2Ms} | |\n`);
  process.stdout.write(`| reference: the same, also on the app's other networks (${others.join(', ') || 'none'}) | ${ref3Ms} | |\n`);
  for (const p of moved.phases) process.stdout.write(`| move phase ${p.phase} | ${p.ms} | |\n`);
  let last = 0;
  for (const s of moved.steps) {
    process.stdout.write(`| downtime step: ${s.step} | ${s.ms} | +${s.ms - last} |\n`);
    last = s.ms;
  }
  if (kill) {
    // The target's `create` comes before the SIGTERM when it is made ahead (a negative time).
    for (const e of docker.filter((d) => (d.ms >= kill.ms || d.action === 'create') && /^(kill|die|stop|create|start)/.test(d.action))) {
      process.stdout.write(`| docker event ${e.action} (${e.id}) | ${e.ms - kill.ms} | ms after the SIGTERM |\n`);
    }
  }
  for (const line of serverErr.split('\n').filter((l) => /volume-mover/.test(l) && /"level":(40|50)/.test(l))) process.stdout.write(`| server warning | | ${line.slice(0, 300)} |\n`);
  for (const g of together.length > 1 ? together : []) process.stdout.write(`| moved together: ${g.volume.name} (now on ${g.volume.root}) | ${g.move.downtimeMs ?? '-'} | ${(g.move.bytesMoved / 1e6).toFixed(1)} MB sent |\n`);
  const sent = together.length > 1 ? together.reduce((n, g) => n + g.move.bytesMoved, 0) : moved.bytesMoved;
  process.stdout.write(`| move, whole command | ${totalMs} | ${(sent / 1e6).toFixed(1)} MB sent |\n`);
  process.stdout.write(
    `| **move downtime** (drained → running on the target) | ${moved.downtimeMs ?? '-'} | ${moved.downtimeMs === null ? '' : `${(moved.downtimeMs / refMs).toFixed(2)}× the reference`}; target log 1..${lines.length} ${gapFree ? 'gap-free' : 'HAS GAPS'} |\n`,
  );
} finally {
  await run('docker', ['rm', '-f', reference, `${reference}-2`, `${reference}-3`]).catch(() => undefined);
  if (server) {
    const proc = server;
    const exited = new Promise((r) => {
      proc.once('exit', r);
      setTimeout(r, 20_000);
    });
    proc.kill('SIGTERM');
    await exited;
  }
  if (appId) {
    const ids = (await run('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`])).stdout.split('\n').filter(Boolean);
    // The app's private network goes with its containers (made per org by the server).
    const networks = ids.length
      ? (await run('docker', ['inspect', '-f', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', ...ids]).catch(() => ({ stdout: '' }))).stdout
          .split(/\s+/)
          .filter((n) => n.startsWith('pier-private-'))
      : [];
    if (ids.length) await run('docker', ['rm', '-f', ...ids]).catch(() => undefined);
    for (const n of new Set(networks)) await run('docker', ['network', 'rm', n]).catch(() => undefined);
    const vols = (await run('docker', ['volume', 'ls', '-q', '--filter', `label=dev.pier.app=${appId}`])).stdout.split('\n').filter(Boolean);
    if (vols.length) await run('docker', ['volume', 'rm', ...vols]).catch(() => undefined);
  }
  if (device) {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]).catch(() => undefined));
    await run('losetup', ['-d', device]).catch(() => undefined);
  }
  await rm(scratch, { recursive: true, force: true });
}
