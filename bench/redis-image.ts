// A Redis image built here, with no registry: the redis server binary Debian's redis-tools
// installs (/usr/bin/redis-check-rdb is redis-server under another name: the binary picks its mode
// from argv[0]) with the shared libraries `ldd` lists, in a FROM scratch image.
import { copyFile, mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from './tools.js';

export const REDIS_IMAGE = 'pier-bench/redis:7';
export const REDIS_BINARY = '/usr/bin/redis-check-rdb';

/** Null when the image can be built (or exists), else why not. */
export function redisImageProblem(): string | null {
  if (!existsSync(REDIS_BINARY)) return `${REDIS_BINARY} is missing (it is the redis server binary): apt-get install -y redis-tools`;
  return null;
}

export async function ensureRedisImage(): Promise<string> {
  const existing = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', REDIS_IMAGE]).then(
    (r) => r.stdout.trim(),
    () => null,
  );
  if (existing) return existing;
  const dir = await mkdtemp(join(tmpdir(), 'pier-redis-image-'));
  try {
    const root = join(dir, 'rootfs');
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await mkdir(join(root, 'data'), { recursive: true });
    await copyFile(REDIS_BINARY, join(root, 'usr/local/bin/redis-server'));
    // Every library the binary links, and the loader, at the paths the binary asks for.
    const { stdout } = await run('ldd', [REDIS_BINARY]);
    const paths = new Set<string>();
    for (const line of stdout.split('\n')) {
      const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (m?.[1]) paths.add(m[1]);
    }
    for (const path of paths) {
      await mkdir(join(root, dirname(path)), { recursive: true });
      await copyFile(await realpath(path), join(root, path));
    }
    await writeFile(
      join(dir, 'Dockerfile'),
      [
        'FROM scratch',
        'COPY rootfs/ /',
        'WORKDIR /data',
        'EXPOSE 6379',
        // No persistence (a benchmark), reachable from outside the container, no password.
        'CMD ["/usr/local/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]',
        '',
      ].join('\n'),
    );
    await run('docker', ['build', '-q', '-t', REDIS_IMAGE, dir], { maxBuffer: 10 * 1024 * 1024 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return (await run('docker', ['image', 'inspect', '--format', '{{.Id}}', REDIS_IMAGE])).stdout.trim();
}
