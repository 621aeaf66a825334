// PIER_EDGE_IO picks the TCP I/O of `pier server`'s in-process edge, read once by loadConfig; a
// value it does not know is a configuration error with its code, not a silent default.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../api/config.js';
import { PierError } from '../../api/pier-error.js';
import { startPierServer } from '../support/pier-process.js';

test('PIER_EDGE_IO is read as auto, handle or socket, and anything else is refused', () => {
  assert.equal(loadConfig({}).edge.io, 'auto');
  assert.equal(loadConfig({ PIER_EDGE_IO: '' }).edge.io, 'auto');
  assert.equal(loadConfig({ PIER_EDGE_IO: 'socket' }).edge.io, 'socket');
  assert.equal(loadConfig({ PIER_EDGE_IO: 'handle' }).edge.io, 'handle');
  assert.throws(
    () => loadConfig({ PIER_EDGE_IO: 'uring' }),
    (err: unknown) => err instanceof PierError && err.code === 'E_CONFIG_INVALID' && /PIER_EDGE_IO "uring" is not auto, handle or socket/.test(err.message),
  );
});

test('pier server runs its edge on the i/o PIER_EDGE_IO names and logs which', { timeout: 120_000 }, async (t) => {
  const server = await startPierServer(t, { PIER_EDGE_IO: 'socket' });
  assert.match(server.stderr(), /"component":"edge","io":"socket","choice":"socket","reason":"asked for","msg":"edge i\/o selected"/);
});
