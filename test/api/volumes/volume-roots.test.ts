// Storage roots by name (--volume-root NAME=PATH, PIER_VOLUME_ROOTS), the move's fault setting,
// and opening roots: one that cannot be used is a warning, not a server that will not start.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { loadConfig } from '../../../api/config.js';
import { parseMoveFault } from '../../../api/volumes/volume-mover.js';
import { openVolumeRoots } from '../../../api/volumes/volume-roots.js';
import { tempRoot } from '../../support/btrfs-loop.js';

test('volume roots: from PIER_VOLUME_ROOTS or --volume-root (which wins); a bad one says how to write it', () => {
  assert.deepEqual(loadConfig({}).volumes.roots, {});
  assert.deepEqual(loadConfig({ PIER_VOLUME_ROOTS: 'fast=/mnt/a,slow=/mnt/b' }).volumes.roots, { fast: '/mnt/a', slow: '/mnt/b' });
  assert.deepEqual(loadConfig({ PIER_VOLUME_ROOTS: 'fast=/mnt/a' }, { volumeRoots: ['other=/srv/x'] }).volumes.roots, { other: '/srv/x' });
  for (const bad of ['fast', 'fast=relative/path', 'default=/mnt/a', 'Fast=/mnt/a']) {
    assert.throws(() => loadConfig({}, { volumeRoots: [bad] }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /NAME=/.test(err.message), bad);
  }
  assert.throws(() => loadConfig({ PIER_VOLUME_ROOTS: 'a=/x,a=/y' }), { code: 'E_CONFIG_INVALID' });
});

test('the move fault setting: fail or hold at a phase, or a truncated send; anything else is refused', () => {
  assert.equal(parseMoveFault(undefined), undefined);
  assert.deepEqual(parseMoveFault('hold:send'), { kind: 'hold', phase: 'send' });
  assert.deepEqual(parseMoveFault('fail:verify'), { kind: 'fail', phase: 'verify' });
  assert.deepEqual(parseMoveFault('truncate:64'), { kind: 'truncate', bytes: 64 });
  for (const bad of ['hold:nowhere', 'truncate:x', 'crash']) assert.throws(() => parseMoveFault(bad), { code: 'E_CONFIG_INVALID' });
});

test('opening roots: the named ones beside default; a root that cannot be used is a warning and is left out', async (t) => {
  const dir = await tempRoot(t);
  const warnings: string[] = [];
  // Under a file: no folder can be made there.
  await writeFile(`${dir}/a-file`, '');
  const roots = await openVolumeRoots(`${dir}/default`, 'dir', { spare: `${dir}/spare`, broken: `${dir}/a-file/root` }, (w) => warnings.push(w));
  assert.ok(roots);
  assert.deepEqual(roots.names(), ['default', 'spare']);
  assert.equal(roots.get('spare').root, `${dir}/spare`);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] as string, /volume root broken/);
  assert.throws(() => roots.get('broken'), { code: 'E_VOLUME_ROOT_UNKNOWN' });
});
