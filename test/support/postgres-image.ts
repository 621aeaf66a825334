// A PostgreSQL image built here, with no registry: Debian's PostgreSQL 15 binaries from this host
// (/usr/lib/postgresql/15, /usr/share/postgresql/15) with the shared libraries `ldd` lists, on the
// busybox test image (a shell, setpriv). `pg-run` makes /data/pg a cluster on first start and runs
// postgres as uid 999 on a unix socket in /tmp (no TCP). Null from postgresImageProblem() when buildable.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ensureBusyboxImage } from './images.js';

const run = promisify(execFile);
export const POSTGRES_IMAGE = 'pier-test/postgres:15';
const PG = '/usr/lib/postgresql/15';

export function postgresImageProblem(): string | null {
  if (!existsSync(`${PG}/bin/postgres`)) return `${PG}/bin/postgres is missing: apt-get install -y postgresql-15`;
  return null;
}

const PG_RUN = `#!/bin/sh
set -e
P=${PG}/bin
chmod o+x /data
mkdir -p /data/pg
chown 999:999 /data/pg
chmod 700 /data/pg
if [ ! -s /data/pg/PG_VERSION ]; then su postgres -s /bin/sh -c "$P/initdb -D /data/pg --no-locale -E UTF8 -U postgres -A trust" > /dev/null; fi
exec su postgres -s /bin/sh -c "exec $P/postgres -D /data/pg -c listen_addresses= -c unix_socket_directories=/tmp -c fsync=on -c synchronous_commit=on"
`;

export async function ensurePostgresImage(): Promise<string> {
  const existing = await imageId();
  if (existing) return existing;
  const base = await ensureBusyboxImage();
  const dir = await mkdtemp(join(tmpdir(), 'pier-postgres-image-'));
  try {
    const root = join(dir, 'rootfs');
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await cp(PG, join(root, PG.slice(1)), { recursive: true, dereference: true });
    await cp('/usr/share/postgresql/15', join(root, 'usr/share/postgresql/15'), { recursive: true, dereference: true });
    for (const zone of ['UTC', 'Etc/UTC', 'GMT']) {
      if (!existsSync(`/usr/share/zoneinfo/${zone}`)) continue;
      await mkdir(join(root, 'usr/share/zoneinfo', dirname(zone)), { recursive: true });
      await copyFile(await realpath(`/usr/share/zoneinfo/${zone}`), join(root, 'usr/share/zoneinfo', zone));
    }
    // Every library the programs and modules link, and the loader, at the paths they ask for.
    const programs = [...['postgres', 'initdb', 'psql', 'pg_ctl'].map((b) => `${PG}/bin/${b}`), ...(await readdir(`${PG}/lib`)).filter((f) => f.endsWith('.so')).map((f) => `${PG}/lib/${f}`)];
    const libs = new Set<string>();
    for (const program of programs) {
      const { stdout } = await run('ldd', [program]).catch(() => ({ stdout: '' }));
      for (const line of stdout.split('\n')) {
        const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
        if (m?.[1]) libs.add(m[1]);
      }
    }
    for (const lib of libs) {
      await mkdir(join(root, dirname(lib)), { recursive: true });
      await copyFile(await realpath(lib), join(root, lib));
    }
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:postgres:/tmp:/bin/sh\n');
    await writeFile(join(root, 'etc/group'), 'root:x:0:\npostgres:x:999:\n');
    await writeFile(join(root, 'usr/local/bin/pg-run'), PG_RUN);
    await chmod(join(root, 'usr/local/bin/pg-run'), 0o755);
    await writeFile(
      join(dir, 'Dockerfile'),
      [`FROM ${base}`, 'COPY rootfs/ /', 'RUN mkdir -p /tmp && chmod 1777 /tmp', `ENV TZ=UTC PATH=${PG}/bin:/usr/local/bin:/bin`, 'CMD ["pg-run"]', ''].join('\n'),
    );
    await run('docker', ['build', '-q', '-t', POSTGRES_IMAGE, dir], { maxBuffer: 10 * 1024 * 1024 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return (await imageId()) as string;
}

async function imageId(): Promise<string | null> {
  return run('docker', ['image', 'inspect', '--format', '{{.Id}}', POSTGRES_IMAGE]).then(
    (r) => r.stdout.trim(),
    () => null,
  );
}
