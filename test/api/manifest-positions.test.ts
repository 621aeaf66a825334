// The TOML position index: key paths of tables, arrays of tables, dotted keys, inline tables and
// array items map to where they are written; multi-line strings and comments do not confuse it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { indexTomlPositions, type TomlPath } from '../../api/manifest-positions.js';

const text = `# a comment with "quotes" and = signs
app = "echo"   # trailing comment
env = { LOG = "info", "QUOTED KEY" = 'x' }
notes = """
line one = not a key
"""
deploy.timeout = "5s"

[processes.web]
cmd = [
  "nc",   # first
  "-l",
]
check = { type = "tcp", port = 80 }

[[endpoints]]
port = 9000

[[endpoints]]
  port = 9001
[[endpoints.extra]]
name = "x"
`;

const cases: { path: TomlPath; key: [number, number]; value?: [number, number] }[] = [
  { path: ['app'], key: [2, 1], value: [2, 7] },
  { path: ['env'], key: [3, 1], value: [3, 7] },
  { path: ['env', 'LOG'], key: [3, 9], value: [3, 15] },
  { path: ['env', 'QUOTED KEY'], key: [3, 23], value: [3, 38] },
  { path: ['notes'], key: [4, 1], value: [4, 9] },
  { path: ['deploy'], key: [7, 1] },
  { path: ['deploy', 'timeout'], key: [7, 1], value: [7, 18] },
  { path: ['processes'], key: [9, 2] },
  { path: ['processes', 'web'], key: [9, 1] },
  { path: ['processes', 'web', 'cmd'], key: [10, 1], value: [10, 7] },
  { path: ['processes', 'web', 'cmd', 1], key: [12, 3], value: [12, 3] },
  { path: ['processes', 'web', 'check', 'port'], key: [14, 25], value: [14, 32] },
  { path: ['endpoints'], key: [16, 3] },
  { path: ['endpoints', 0], key: [16, 1] },
  { path: ['endpoints', 0, 'port'], key: [17, 1], value: [17, 8] },
  { path: ['endpoints', 1, 'port'], key: [20, 3], value: [20, 10] },
  { path: ['endpoints', 1, 'extra', 0, 'name'], key: [22, 1], value: [22, 8] },
];

for (const c of cases) {
  test(`${c.path.join('.')} is found at line ${c.key[0]}, column ${c.key[1]}`, () => {
    const entry = indexTomlPositions(text).get(c.path);
    assert.ok(entry, `no entry for ${c.path.join('.')}`);
    assert.deepEqual([entry.key.line, entry.key.column], c.key);
    if (c.value) assert.deepEqual([entry.value?.line, entry.value?.column], c.value);
  });
}

test('nothing is indexed from inside a multi-line string', () => {
  assert.equal(indexTomlPositions(text).get(['line one']), undefined);
});

test('a path that is not written falls back to its nearest written ancestor', () => {
  const found = indexTomlPositions(text).nearest(['processes', 'web', 'count']);
  assert.deepEqual(found && [found.entry.key.line, found.up], [9, 1]);
});

test('text that does not parse keeps what was indexed before the problem', () => {
  const index = indexTomlPositions('app = "x"\n= = =\n');
  assert.deepEqual(index.get(['app'])?.key, { line: 1, column: 1 });
});
