// Test images built locally (no registry is reachable): a busybox rootfs `docker import`ed from
// Debian's static busybox, with httpd and an `nc -ll -e cat` echo server. Also requireDocker().

import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, open, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';

const run = promisify(execFile);

const BUSYBOX = '/bin/busybox';

/**
 * Returns the id of a busybox image tagged `tag`, importing it on first use. Default CMD is `sh`.
 * Fails with a clear message when /bin/busybox is missing or dynamically linked.
 */
export function ensureBusyboxImage(tag = 'pier-test/busybox:1'): Promise<string> {
  let pending = building.get(tag);
  if (pending === undefined) {
    pending = buildOnce(tag);
    building.set(tag, pending);
    pending.catch(() => building.delete(tag));
  }
  return pending;
}

/** Per process: concurrent tests share one build. */
const building = new Map<string, Promise<string>>();

async function buildOnce(tag: string): Promise<string> {
  const existing = await imageId(tag);
  if (existing !== null) return existing;
  await assertStaticBusybox();
  // Test files run in parallel processes: a lock file makes one import the image, the rest wait
  // for it, so every caller gets the same id.
  const release = await lock(join(tmpdir(), `pier-image-${tag.replace(/[^a-zA-Z0-9.-]/g, '_')}.lock`));
  try {
    return (await imageId(tag)) ?? (await importBusybox(tag));
  } finally {
    await release();
  }
}

async function importBusybox(tag: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-busybox-'));
  try {
    const root = join(dir, 'rootfs');
    await buildRootfs(root);
    const tarball = join(dir, 'rootfs.tar');
    await run('tar', ['--owner=0', '--group=0', '--numeric-owner', '-C', root, '-cf', tarball, '.']);
    await run('docker', ['import', '--change', 'CMD ["sh"]', tarball, tag]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const id = await imageId(tag);
  if (id === null) throw new Error(`docker import reported success but ${tag} is not there`);
  return id;
}

/** An exclusive-create lock file; one left by a crashed process is taken over after a minute. */
async function lock(path: string): Promise<() => Promise<void>> {
  for (let i = 0; i < 1200; i++) {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' });
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 60_000) await rm(path, { force: true });
      else await delay(100);
    }
  }
  throw new Error(`could not take the image build lock ${path}`);
}

/** Skips the test when Docker does not answer, except in CI where that is a failure. */
export async function requireDocker(t: TestContext): Promise<boolean> {
  try {
    await run('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 10_000 });
    return true;
  } catch (err) {
    if (process.env.CI === 'true') {
      throw new Error('docker is not available in CI; start it with `bash .ci/start-docker`', { cause: err });
    }
    t.skip('docker not available');
    return false;
  }
}

async function imageId(tag: string): Promise<string | null> {
  try {
    const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', tag]);
    return stdout.trim();
  } catch {
    return null;
  }
}

async function buildRootfs(root: string): Promise<void> {
  for (const d of ['bin', 'tmp', 'etc', 'www', 'proc', 'sys', 'dev']) await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  const { stdout } = await run(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n')) {
    // Applet names are plain words; skip anything that could escape bin/ (e.g. `[[` is fine).
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue;
    await symlink('busybox', join(root, 'bin', applet));
  }
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(root, 'www', 'index.html'), '<h1>pier test</h1>\n');
}

/** A static ELF has no PT_INTERP program header; a dynamic busybox would not run in an empty rootfs. */
async function assertStaticBusybox(): Promise<void> {
  try {
    const fh = await open(BUSYBOX, 'r');
    try {
      const header = Buffer.alloc(64);
      await fh.read(header, 0, 64, 0);
      if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) {
        throw new Error(`${BUSYBOX} is not a 64-bit little-endian ELF executable`);
      }
      const phoff = Number(header.readBigUInt64LE(32));
      const phentsize = header.readUInt16LE(54);
      const phnum = header.readUInt16LE(56);
      const phdrs = Buffer.alloc(phentsize * phnum);
      await fh.read(phdrs, 0, phdrs.length, phoff);
      for (let i = 0; i < phnum; i++) {
        if (phdrs.readUInt32LE(i * phentsize) === 3) {
          throw new Error(`${BUSYBOX} is dynamically linked; install Debian's busybox-static (apt-get install busybox-static)`);
        }
      }
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${BUSYBOX} is missing; install Debian's busybox-static (apt-get install busybox-static)`);
    }
    throw err;
  }
}
