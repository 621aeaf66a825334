// Build contexts for tests: a temp folder with the given files (a `busybox` entry copies the
// machine's static /bin/busybox), packed as the tar a client uploads; and the removal of the
// images a test's builds made, by the test registry they are named in.
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import tar from 'tar-fs';

const run = promisify(execFile);

export const BUSYBOX_FILE = Symbol('busybox');

/** A web server image from scratch: busybox httpd on 8080 serving /www. */
export function httpdDockerfile(extra = ''): string {
  return `FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n${extra}CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n`;
}

export async function makeContext(t: TestContext, files: Record<string, string | typeof BUSYBOX_FILE>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-build-context-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFiles(dir, files);
  return dir;
}

export async function writeFiles(dir: string, files: Record<string, string | typeof BUSYBOX_FILE>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const file = join(dir, path);
    await mkdir(dirname(file), { recursive: true });
    if (content === BUSYBOX_FILE) {
      await copyFile('/bin/busybox', file);
      await chmod(file, 0o755);
    } else await writeFile(file, content);
  }
}

export async function tarOf(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of tar.pack(dir) as unknown as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Removes every image of a test's own registry (named `HOST/org/app`), pushed or pulled. */
export async function removeRegistryImages(host: string): Promise<void> {
  const { stdout } = await run('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  const ids = new Set<string>();
  for (const line of stdout.split('\n')) {
    const [ref, id] = line.split(' ');
    if (ref?.startsWith(`${host}/`) && id) ids.add(id);
  }
  if (ids.size) await run('docker', ['image', 'rm', '-f', ...ids]).catch(() => undefined);
}
