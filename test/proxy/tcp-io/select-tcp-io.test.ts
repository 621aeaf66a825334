// How the edge's TCP I/O is picked from the running Node's facts: the pure decision table, and
// that loading follows it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideTcpIo, selectTcpIo, type NodeFacts, type TcpIoChoice, type TcpIoDecision } from '../../../proxy/tcp-io/select-tcp-io.js';

const plain: NodeFacts = { hasBinding: true, permissionModel: false, pendingDeprecation: false };

const cases: [string, TcpIoChoice, NodeFacts, TcpIoDecision][] = [
  ['auto on a plain Node takes the handles', 'auto', plain, { mode: 'handle', reason: "Node's TCP handles are usable" }],
  ['auto under the permission model takes sockets', 'auto', { ...plain, permissionModel: true }, { mode: 'socket', reason: "Node's permission model denies process.binding()" }],
  [
    'auto with --pending-deprecation takes sockets',
    'auto',
    { ...plain, pendingDeprecation: true },
    { mode: 'socket', reason: 'process.binding() would warn DEP0111 under --pending-deprecation' },
  ],
  ['auto on a Node without process.binding takes sockets', 'auto', { ...plain, hasBinding: false }, { mode: 'socket', reason: 'this Node has no process.binding()' }],
  ['socket is honoured everywhere', 'socket', plain, { mode: 'socket', reason: 'asked for' }],
  ['handle is honoured where it can run', 'handle', plain, { mode: 'handle', reason: 'asked for' }],
  [
    'handle where it cannot run is an error naming why',
    'handle',
    { ...plain, permissionModel: true },
    { error: "handle i/o cannot run here: Node's permission model denies process.binding()" },
  ],
];

for (const [name, choice, facts, expected] of cases) {
  test(`decideTcpIo: ${name}`, () => {
    assert.deepEqual(decideTcpIo(choice, facts), expected);
  });
}

test('selectTcpIo loads the decided implementation and refuses a forced one that cannot run', async () => {
  assert.equal((await selectTcpIo('socket')).io.mode, 'socket');
  assert.equal((await selectTcpIo('auto', undefined, { ...plain, permissionModel: true })).io.mode, 'socket');
  await assert.rejects(selectTcpIo('handle', undefined, { ...plain, hasBinding: false }), /handle i\/o cannot run here: this Node has no process\.binding\(\)/);
});
