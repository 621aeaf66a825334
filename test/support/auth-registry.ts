// A docker-registry on loopback that wants basic auth (htpasswd, bcrypt from apache2-utils'
// `htpasswd -B`), deletes enabled: an external registry with credentials, for tests.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export async function startAuthRegistry(t: TestContext, username: string, password: string): Promise<{ host: string; url: URL }> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-auth-registry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const line = await new Promise<string>((resolve, reject) => {
    const child = execFile('htpasswd', ['-niB', username], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin?.end(password);
  });
  await writeFile(join(dir, 'htpasswd'), `${line}\n`);
  await mkdir(join(dir, 'data'));
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
      '  delete:',
      '    enabled: true',
      'auth:',
      '  htpasswd:',
      '    realm: pier-test',
      `    path: ${JSON.stringify(join(dir, 'htpasswd'))}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  t.after(() => {
    proc.kill('SIGTERM');
  });
  for (let i = 0; i < 150; i++) {
    const status = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1_000) }).then(
      async (r) => {
        await r.body?.cancel();
        return r.status;
      },
      () => 0,
    );
    if (status === 401) return { host: `127.0.0.1:${port}`, url: new URL(`http://127.0.0.1:${port}`) };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the auth registry did not start');
}
