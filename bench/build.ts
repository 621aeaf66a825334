// `npm run bench:build [-- --rounds N --upload-mb 50]`: deploying from a Dockerfile, measured
// against doing it by hand on the same engine and registry. A real `pier server` (API, edge, its
// own registry; embedded database) runs beside it on the real Docker engine. For each of a cold build (new
// layers), a warm rebuild (one source file changed) and a no-op rebuild, it times
//   pier:      pack + upload + build + push + deploy, until the edge serves the new content
//   reference: `docker build` + `docker push` + a plain deploy of the pushed digest, until served
// and prints the ratio (goal: warm <= 1.2x). It also times the upload of a context of N MB of
// incompressible files until the server holds it (goal >= 200 MB/s). Goals, not assertions.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify, parseArgs } from 'node:util';
import type { TestContext } from 'node:test';
import type { DeploymentView } from '../api/views.js';
import { ApiClient } from '../cli/api-client.js';
import { packContext } from '../cli/build-context.js';
import { BUSYBOX_FILE, httpdDockerfile, removeRegistryImages, writeFiles } from '../test/support/build-context.js';
import { startPierServer } from '../test/support/pier-process.js';
import { freePortOnBoth } from '../test/support/tcp-client.js';

const run = promisify(execFile);
const { values: flags } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'upload-mb': { type: 'string', default: '50' } } });
const rounds = Number(flags.rounds);
const log = (line: string) => process.stderr.write(`${line}\n`);

const dir = await mkdtemp(join(tmpdir(), 'pier-bench-build-'));
// startPierServer's clean-ups (stop the server, remove its folder), run at the end.
const cleanups: (() => Promise<unknown> | unknown)[] = [];
const server = await startPierServer({ after: (fn: () => unknown) => void cleanups.push(fn) } as unknown as TestContext, { PIER_LOG_LEVEL: 'warn' });
const client = new ApiClient({ apiUrl: server.apiUrl, token: server.token });
const registry = `127.0.0.1:${(await readFile(join(server.dir, 'data', 'registry', 'port'), 'utf8')).trim()}`;
const apps: string[] = [];

try {
  const results: { phase: string; pier: number[]; reference: number[] }[] = [];
  for (const phase of ['cold', 'warm', 'no-op'] as const) results.push({ phase, pier: [], reference: [] });
  for (let round = 0; round < rounds; round++) {
    const pierApp = await makeApp(`bench-pier-${round}`);
    const refApp = await makeApp(`bench-ref-${round}`);
    for (const result of results) {
      // Alternate who goes first: the engine's page cache should favour neither.
      const order = round % 2 === 0 ? [pierApp, refApp] : [refApp, pierApp];
      for (const app of order) {
        if (result.phase === 'warm') await writeFiles(app.src, { 'www/index.html': `${app.name} warm ${round}\n` });
        const ms = app === pierApp ? await viaPier(app) : await byHand(app);
        (app === pierApp ? result.pier : result.reference).push(ms);
        log(`round ${round + 1} ${result.phase}: ${app === pierApp ? 'pier' : 'reference'} ${ms.toFixed(0)} ms`);
      }
    }
  }
  const upload = await uploadRate(Number(flags['upload-mb']));

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  console.log(`\nDeploy from a Dockerfile until the edge serves it, median of ${rounds} (ms)\n`);
  console.log('| phase | pier deploy | docker build + push + deploy | ratio |');
  console.log('|---|---|---|---|');
  for (const r of results) console.log(`| ${r.phase} | ${median(r.pier).toFixed(0)} | ${median(r.reference).toFixed(0)} | ${(median(r.pier) / median(r.reference)).toFixed(2)}x |`);
  console.log(`\nContext upload: ${upload.mb} MB in ${upload.ms.toFixed(0)} ms = ${(upload.mb / (upload.ms / 1000)).toFixed(0)} MB/s (pack, send, hash and spool until the server answers)`);
} finally {
  // The server first (it would start the instances again), then its containers and images.
  const ids = (await Promise.all(apps.map((name) => client.status(name).then((s) => s.app.id, () => null)))).filter((id): id is string => id !== null);
  for (const fn of cleanups) await fn();
  for (const id of ids) {
    const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${id}`]);
    const containers = stdout.split('\n').filter(Boolean);
    if (containers.length) await run('docker', ['rm', '-f', ...containers]).catch(() => undefined);
  }
  await removeRegistryImages(registry);
  await rm(dir, { recursive: true, force: true });
}

interface BenchApp {
  name: string;
  src: string;
  port: number;
  content: () => Promise<string>;
}

async function makeApp(name: string): Promise<BenchApp> {
  const src = join(dir, name);
  // A seed of its own makes the first build cold, whatever was built before.
  await writeFiles(src, { Dockerfile: `FROM scratch\nCOPY seed /seed\n${httpdDockerfile().replace('FROM scratch\n', '')}`, seed: randomBytes(16).toString('hex'), busybox: BUSYBOX_FILE, 'www/index.html': `${name} cold\n` });
  apps.push(name);
  return { name, src, port: await freePortOnBoth(), content: () => readFile(join(src, 'www/index.html'), 'utf8') };
}

function manifest(app: BenchApp, image: string | null): string {
  return `app = "${app.name}"\n${image ? `image = "${image}"\n` : '[build]\n'}\n[processes.web]\n\n[deploy]\nstrategy = "immediate"\n\n[[endpoints]]\nprocess = "web"\nport = ${app.port}\ntarget = 8080\n`;
}

async function viaPier(app: BenchApp): Promise<number> {
  const start = performance.now();
  const packed = await packContext(app.src, { dockerfile: 'Dockerfile', ignore: [] });
  let image: string | null = null;
  for await (const event of client.build({ app: app.name, dockerfile: 'Dockerfile', args: {} }, packed.stream)) {
    if (event.type === 'error') throw new Error(event.error.message);
    if (event.type === 'built') image = event.image;
  }
  if (!image) throw new Error('the build ended without an image');
  await deployAndServe(app, manifest(app, null), { image });
  return performance.now() - start;
}

async function byHand(app: BenchApp): Promise<number> {
  const start = performance.now();
  const tag = `${registry}/bench/${app.name}:latest`;
  await run('docker', ['build', '-q', '-t', tag, app.src]);
  await run('docker', ['push', '-q', tag]);
  const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{join .RepoDigests "\\n"}}', tag]);
  const digest = stdout.split('\n').find((d) => d.startsWith(`${registry}/bench/${app.name}@`));
  if (!digest) throw new Error(`no digest for ${tag}`);
  await deployAndServe(app, manifest(app, digest));
  return performance.now() - start;
}

async function deployAndServe(app: BenchApp, text: string, build?: { image: string }): Promise<void> {
  const result = await client.deploy({ manifest: text, file: 'pier.toml', ...(build ? { build } : {}) }, randomBytes(8).toString('hex'));
  let dep: DeploymentView = result.deployment;
  for (let i = 0; i < 600 && dep.state === 'running'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    dep = await client.deployment(dep.id);
  }
  if (dep.state !== 'succeeded' && result.created) throw new Error(`deploy of ${app.name} ended ${dep.state}: ${dep.failureReason}`);
  const want = await app.content();
  for (let i = 0; i < 600; i++) {
    const body = await fetch(`http://127.0.0.1:${app.port}/index.html`).then((r) => r.text(), () => '');
    if (body === want) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${app.name} never served ${JSON.stringify(want)}`);
}

/** From the first byte packed to the server's "context received" line. */
async function uploadRate(mb: number): Promise<{ mb: number; ms: number }> {
  const src = join(dir, 'upload');
  const files: Record<string, string> = { Dockerfile: 'FROM scratch\nCOPY Dockerfile /Dockerfile\n' };
  await writeFiles(src, files);
  await mkdir(join(src, 'data'));
  for (let i = 0; i < mb; i++) await writeFile(join(src, 'data', `${i}.bin`), randomBytes(1024 * 1024));
  const start = performance.now();
  const packed = await packContext(src, { dockerfile: 'Dockerfile', ignore: [] });
  let ms = NaN;
  for await (const event of client.build({ app: 'bench-upload', dockerfile: 'Dockerfile', args: {} }, packed.stream)) {
    if (Number.isNaN(ms)) ms = performance.now() - start;
    if (event.type === 'error') throw new Error(event.error.message);
  }
  return { mb: packed.bytes() / 1024 / 1024, ms };
}
