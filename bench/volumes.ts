// `npm run bench:volumes [-- --mib 1024 --files 16]`: the volume drivers on 1 GiB of random data,
// on a btrfs loop file made (and removed) here and on a plain folder for the dir driver: snapshot,
// restore into a new volume, restore in place, export and import, each checked by the tree's
// sha256. References in the same run: a full copy (`cp -a --reflink=never`) and reading the files
// once (`cat > /dev/null`); for export, `cat` and `tar` of the snapshot to a file. Goals (issue 15), not assertions: snapshot <= 50 ms, restore <= 100 ms,
// export >= 300 MB/s. Needs root and btrfs-progs.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import { parseArgs, promisify } from 'node:util';
import { openVolumeDriver } from '../api/volumes/open-volume-driver.js';
import { exportSnapshot, importSnapshot } from '../api/volumes/snapshot-archive.js';
import { treeHash } from '../api/volumes/tree-hash.js';
import type { VolumeDriver } from '../api/volumes/volume-driver.js';

const run = promisify(execFile);
const { values: flags } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, files: { type: 'string', default: '16' }, 'export-only': { type: 'boolean', default: false }, rounds: { type: 'string', default: '2' } },
});
const exportOnly = flags['export-only'];
const rounds = Number(flags.rounds);
const mib = Number(flags.mib);
const files = Number(flags.files);
const log = (line: string) => process.stderr.write(`${line}\n`);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

async function fill(dir: string): Promise<void> {
  const per = Math.floor((mib * 1024 * 1024) / files);
  for (let i = 0; i < files; i++) {
    const out = createWriteStream(join(dir, `f${i}.bin`));
    for (let left = per; left > 0; left -= 4 * 1024 * 1024) {
      const chunk = randomBytes(Math.min(left, 4 * 1024 * 1024));
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
  }
  await run('sync');
}

interface Row {
  driver: string;
  step: string;
  ms: number;
  note: string;
}

async function bench(driver: VolumeDriver, rows: Row[]): Promise<void> {
  const add = (step: string, ms: number, note = '') => {
    rows.push({ driver: driver.kind, step, ms, note });
    log(`${driver.kind}: ${step} ${ms.toFixed(1)} ms ${note}`);
  };
  const path = await driver.create('vol_bench');
  await fill(path);
  const source = await treeHash(path);
  const check = async (dir: string) => ((await treeHash(dir)).sha256 === source.sha256 ? 'sha256 matched' : 'SHA256 MISMATCH');

  if (exportOnly) return exportRounds(driver, 'vol_bench', source, add);
  const read = await timed(() => run('sh', ['-c', `cat ${path}/* > /dev/null`]));
  add('reference: read the files once (cat)', read.ms, `${((source.bytes / 1e6) / (read.ms / 1000)).toFixed(0)} MB/s`);
  const copy = await timed(() => run('cp', ['-a', '--reflink=never', path, join(driver.root, 'copy-reference')]));
  add('reference: full copy (cp -a --reflink=never)', copy.ms);
  await rm(join(driver.root, 'copy-reference'), { recursive: true, force: true });

  const snap = await timed(() => driver.snapshot('vol_bench', 'snap_bench'));
  add('snapshot', snap.ms, `${await check(driver.snapshotPath('snap_bench'))}; ${(copy.ms / snap.ms).toFixed(0)}x faster than the copy`);
  const restore = await timed(() => driver.restore('snap_bench', 'vol_restored'));
  add('restore into a new volume', restore.ms, await check(driver.volumePath('vol_restored')));
  await writeFile(join(path, 'f0.bin'), randomBytes(32 * 1024 * 1024));
  const inPlace = await timed(() => driver.replace('vol_bench', 'snap_bench'));
  add('restore in place (after a 32 MiB change)', inPlace.ms, await check(driver.volumePath('vol_bench')));

  const file = join(driver.root, '..', `export-${driver.kind}.pier-snapshot`);
  // References for export, written to the same place: the files concatenated, and a plain tar.
  // Through a pipe, as export's data goes: cat straight to a file may clone extents (copy_file_range).
  const catTo = await timed(() => run('sh', ['-c', `cat ${driver.snapshotPath('snap_bench')}/* | cat > ${file}`]));
  add('reference: cat of the files through a pipe to a file', catTo.ms, `${((source.bytes / 1e6) / (catTo.ms / 1000)).toFixed(0)} MB/s`);
  await rm(file, { force: true });
  const tarTo = await timed(() => run('sh', ['-c', `tar -C ${driver.snapshotPath('snap_bench')} --sort=name --numeric-owner -cf - . > ${file}`]));
  add('reference: tar of the files to a file', tarTo.ms, `${((source.bytes / 1e6) / (tarTo.ms / 1000)).toFixed(0)} MB/s`);
  await rm(file, { force: true });
  const snapRow = { id: 'snap_bench', volumeName: 'bench', sha256: source.sha256, bytes: source.bytes, files: source.files, createdAt: new Date() } as Parameters<typeof exportSnapshot>[1];
  const exported = await timed(async () => {
    const { stream } = await exportSnapshot(driver, snapRow);
    await pipeline(stream, createWriteStream(file));
  });
  const size = (await stat(file)).size;
  add(
    'export (header, tar streamed and hashed, trailer; to a file)',
    exported.ms,
    `${((size / 1e6) / (exported.ms / 1000)).toFixed(0)} MB/s, ${size} bytes; ${(exported.ms / tarTo.ms).toFixed(2)}x the time of tar, ${(exported.ms / catTo.ms).toFixed(2)}x that of cat`,
  );
  const imported = await timed(() => importSnapshot(driver, 'default', createReadStream(file)));
  add('import (verify + extract + verify)', imported.ms, imported.value.sha256 === source.sha256 ? 'sha256 matched' : 'SHA256 MISMATCH');
  await rm(file, { force: true });
}

/**
 * Export against its references, `rounds` times in turn (the shared disk is noisy): to /dev/null
 * (what reading and tar cost) and to a file on the same disk (what writing adds).
 */
async function exportRounds(driver: VolumeDriver, volumeId: string, source: { sha256: string; bytes: number; files: number }, add: (step: string, ms: number, note?: string) => void): Promise<void> {
  await driver.snapshot(volumeId, 'snap_export');
  const dir = driver.snapshotPath('snap_export');
  const file = join(driver.root, '..', `export-${driver.kind}.pier-snapshot`);
  const snapRow = { id: 'snap_export', volumeName: 'bench', sha256: source.sha256, bytes: source.bytes, files: source.files, createdAt: new Date() } as Parameters<typeof exportSnapshot>[1];
  const rate = (ms: number) => `${(source.bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
  for (let round = 1; round <= rounds; round++) {
    for (const to of ['/dev/null', file]) {
      const where = to === '/dev/null' ? '/dev/null' : 'a file';
      const cat = await timed(() => run('sh', ['-c', `cat ${dir}/* | cat > ${to}`]));
      add(`round ${round}: reference: cat of the files through a pipe to ${where}`, cat.ms, rate(cat.ms));
      await rm(file, { force: true });
      const tar = await timed(() => run('sh', ['-c', `tar -C ${dir} --sort=name --numeric-owner -cf - . | cat > ${to}`]));
      add(`round ${round}: reference: tar through a pipe to ${where}`, tar.ms, rate(tar.ms));
      await rm(file, { force: true });
      const exported = await timed(async () => {
        const { stream } = await exportSnapshot(driver, snapRow);
        await pipeline(stream, createWriteStream(to));
      });
      add(`round ${round}: export to ${where}`, exported.ms, `${rate(exported.ms)}; ${(exported.ms / tar.ms).toFixed(2)}× the time of tar, ${(exported.ms / cat.ms).toFixed(2)}× that of cat`);
      await rm(file, { force: true });
    }
  }
}

const rows: Row[] = [];
const scratch = await mkdtemp(join(tmpdir(), 'pier-bench-volumes-'));
let device: string | null = null;
const mnt = join(scratch, 'mnt');
try {
  await mkdir(mnt);
  const img = join(scratch, 'fs.img');
  await run('truncate', ['-s', `${Math.ceil((mib * 4) / 1024) + 1}G`, img]);
  await run('mkfs.btrfs', ['-q', img]);
  device = (await run('losetup', ['--find', '--show', img])).stdout.trim();
  await run('mount', [device, mnt]);
  await bench(await openVolumeDriver(join(mnt, 'root'), 'btrfs'), rows);
  const plain = join(scratch, 'dir-root');
  await bench(await openVolumeDriver(plain, 'dir'), rows);
  await rm(plain, { recursive: true, force: true });
} finally {
  if (device) {
    await run('umount', [mnt]).catch(() => undefined);
    await run('losetup', ['-d', device]).catch(() => undefined);
  }
  await rm(scratch, { recursive: true, force: true });
}

process.stdout.write(`\n${mib} MiB of random data in ${files} files\n\n| driver | step | ms | |\n|---|---|---:|---|\n`);
for (const r of rows) process.stdout.write(`| ${r.driver} | ${r.step} | ${r.ms.toFixed(1)} | ${r.note} |\n`);
