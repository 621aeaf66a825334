// A docker-registry (Debian's, distribution 2.8) without auth, listening on an address the test
// names — on a swarm test, the host's leg on the nodes' bridge, so every node pulls from it.
// Its own temp folder; ended by PID at the end of the test.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

/** Starts it on `address` (a free port) and resolves with `ADDRESS:PORT` once /v2/ answers. */
export async function startPlainRegistry(t: TestContext, address: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-plain-registry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'data'));
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer().once('error', reject).listen(0, address, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`, 'http:', `  addr: ${address}:${port}`, ''].join('\n'),
  );
  const proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  t.after(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    // Unref'd: a pending timer would keep the test file's process alive after a quick exit.
    await Promise.race([exited, delay(5_000, undefined, { ref: false })]);
  });
  for (let i = 0; i < 150; i++) {
    const status = await fetch(`http://${address}:${port}/v2/`, { signal: AbortSignal.timeout(1_000) }).then(
      async (r) => {
        await r.body?.cancel();
        return r.status;
      },
      () => 0,
    );
    if (status === 200) return `${address}:${port}`;
    if (proc.exitCode !== null) break;
    await delay(100);
  }
  throw new Error(`the registry on ${address}:${port} did not start`);
}
