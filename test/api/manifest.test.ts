// pier.toml parsing and validation: defaults, TOML errors with line and column, and every
// problem of a manifest reported at once as E_MANIFEST_INVALID.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest, validateManifest, type ManifestProblem } from '../../api/manifest.js';
import { PierError } from '../../api/pier-error.js';

const example = `app = "echo"
image = "local/echo:1"

[processes.web]
cmd = ["nc", "-ll", "-p", "5000", "-e", "cat"]

[[endpoints]]
process = "web"
port = 9000
target = 5000
`;

/** The problems of an invalid manifest, after checking the error's code, status and message. */
function problemsOf(fn: () => unknown): ManifestProblem[] {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PierError, `expected a PierError, got ${String(caught)}`);
  assert.equal(caught.code, 'E_MANIFEST_INVALID');
  assert.equal(caught.status, 422);
  assert.ok(caught.hint);
  assert.ok(Array.isArray(caught.details));
  const problems = caught.details as ManifestProblem[];
  for (const p of problems) assert.ok(caught.message.includes(p.message), `the message lists "${p.message}"`);
  return problems;
}

test('the example manifest parses, with defaults for env and every endpoint setting, and no count unless written', () => {
  const m = parseManifest(example);
  assert.equal(m.app, 'echo');
  assert.equal(m.image, 'local/echo:1');
  assert.deepEqual(m.env, {});
  assert.deepEqual(m.processes, { web: { cmd: ['nc', '-ll', '-p', '5000', '-e', 'cat'], env: {} } });
  assert.deepEqual(m.endpoints, [
    { process: 'web', port: 9000, target: 5000, proxy_protocol: 'none', proxy_protocol_tlvs: [], tls: 'none', sni: [], sni_default: false, allow: [], deny: [] },
  ]);
});

test('explicit values replace the defaults', () => {
  const m = parseManifest(`app = "game"
image = "local/game:2"
env = { MODE = "prod" }

[processes.server]
count = 3
env = { PORT = "7777" }

[processes.worker]

[[endpoints]]
process = "server"
port = 7777
target = 7777
proxy_protocol = "v2"
`);
  assert.deepEqual(m.env, { MODE: 'prod' });
  assert.deepEqual(m.processes.server, { count: 3, env: { PORT: '7777' } });
  assert.deepEqual(m.processes.worker, { env: {} }, 'a count left out stays out: pier scale or 1 decides (api/desired-counts.ts)');
  assert.equal(m.endpoints[0]?.proxy_protocol, 'v2');
});

test('a manifest without endpoints has none', () => {
  assert.deepEqual(parseManifest('app = "jobs"\nimage = "x"\n[processes.worker]\n').endpoints, []);
});

test('bad TOML is reported with its line and column', () => {
  const problems = problemsOf(() => parseManifest('app = "echo"\nimage = "x"\ncount = = 2\n', 'deploy/pier.toml'));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, 3);
  assert.equal(typeof problems[0]?.column, 'number');
  assert.match(problems[0]?.message ?? '', /^not valid TOML: /);
  assert.throws(() => parseManifest('app = "echo"\nimage = "x"\ncount = = 2\n', 'deploy/pier.toml'), /deploy\/pier\.toml:3:\d+: not valid TOML/);
});

const invalid: { name: string; text: string; want: ManifestProblem[] }[] = [
  {
    name: 'an unknown top-level key',
    text: example.replace('image =', 'colour = "red"\nimage ='),
    want: [{ path: '', message: 'unknown key "colour"', line: 2, column: 1 }],
  },
  {
    name: 'an unknown key in a process, with its path',
    text: example.replace('cmd =', 'cnt = 2\ncmd ='),
    want: [{ path: 'processes.web', message: 'unknown key "cnt"', line: 5, column: 1 }],
  },
  {
    name: 'an unknown key in an endpoint, with its path',
    text: `${example}weight = 2\n`,
    want: [{ path: 'endpoints[0]', message: 'unknown key "weight"', line: 11, column: 1 }],
  },
  {
    name: 'an endpoint naming a missing process',
    text: example.replace('process = "web"', 'process = "api"'),
    want: [{ path: 'endpoints[0].process', message: 'names no process; define [processes.api] or use one of: web', line: 8, column: 11 }],
  },
  {
    name: 'an endpoint naming an inherited property rather than a process',
    text: example.replace('process = "web"', 'process = "constructor"'),
    want: [{ path: 'endpoints[0].process', message: 'names no process; define [processes.constructor] or use one of: web', line: 8, column: 11 }],
  },
  {
    name: 'two endpoints on the same port',
    text: `${example}\n[[endpoints]]\nprocess = "web"\nport = 9000\ntarget = 6000\n`,
    want: [{ path: 'endpoints[1].port', message: 'port 9000 is used by another endpoint of this app', line: 14, column: 8 }],
  },
];

for (const c of invalid) {
  test(`the manifest is invalid with ${c.name}`, () => {
    assert.deepEqual(problemsOf(() => parseManifest(c.text)), c.want);
  });
}

const badFields: { name: string; text: string; path: string }[] = [
  { name: 'a port above 65535', text: example.replace('port = 9000', 'port = 70000'), path: 'endpoints[0].port' },
  { name: 'a port of 0', text: example.replace('port = 9000', 'port = 0'), path: 'endpoints[0].port' },
  { name: 'a fractional target port', text: example.replace('target = 5000', 'target = 50.5'), path: 'endpoints[0].target' },
  { name: 'a port given as a string', text: example.replace('port = 9000', 'port = "9000"'), path: 'endpoints[0].port' },
  { name: 'an app name with capitals', text: example.replace('app = "echo"', 'app = "Echo"'), path: 'app' },
  { name: 'an app name with an underscore', text: example.replace('app = "echo"', 'app = "my_app"'), path: 'app' },
  { name: 'an app name starting with a digit', text: example.replace('app = "echo"', 'app = "1echo"'), path: 'app' },
  { name: 'an app name of 41 characters', text: example.replace('app = "echo"', `app = "${'a'.repeat(41)}"`), path: 'app' },
  { name: 'an empty image', text: example.replace('image = "local/echo:1"', 'image = ""'), path: 'image' },
  { name: 'a negative count', text: example.replace('cmd =', 'count = -1\ncmd ='), path: 'processes.web.count' },
  { name: 'an empty cmd', text: example.replace(/cmd = .*/, 'cmd = []'), path: 'processes.web.cmd' },
  { name: 'a bad proxy_protocol', text: `${example}proxy_protocol = "v3"\n`, path: 'endpoints[0].proxy_protocol' },
  { name: 'a bad variable name', text: example.replace('image =', 'env = { "1X" = "y" }\nimage ='), path: 'env.1X' },
  { name: 'no processes', text: 'app = "echo"\nimage = "x"\nprocesses = {}\n', path: 'processes' },
];

for (const c of badFields) {
  test(`the manifest is invalid with ${c.name}, reported at ${c.path}`, () => {
    const problems = problemsOf(() => parseManifest(c.text));
    assert.deepEqual(
      problems.map((p) => p.path),
      [c.path],
      JSON.stringify(problems),
    );
  });
}

test('an app name of 40 characters is fine', () => {
  assert.equal(parseManifest(example.replace('app = "echo"', `app = "${'a'.repeat(40)}"`)).app, 'a'.repeat(40));
});

test('every problem of a manifest is reported at once', () => {
  const text = `app = "Bad_Name"
colour = "red"

[processes.web]
cnt = 2

[[endpoints]]
process = "api"
port = 70000
target = 5000

[[endpoints]]
process = "web"
port = 9000
target = 5000

[[endpoints]]
process = "web"
port = 9000
target = 5001
`;
  const problems = problemsOf(() => parseManifest(text));
  assert.deepEqual(problems.map((p) => p.path).sort(), ['', 'app', 'endpoints[0].port', 'endpoints[0].process', 'endpoints[2].port', 'image', 'processes.web'].sort());
});

test('validateManifest reports the same problems for a JSON object', () => {
  const problems = problemsOf(() => validateManifest({ app: 'echo', image: 'x', processes: { web: {} }, endpoints: [{ process: 'api', port: 0, target: 1 }] }, 'api'));
  assert.deepEqual(problems.map((p) => p.path).sort(), ['endpoints[0].port', 'endpoints[0].process']);
});

test('validateManifest rejects a document that is not an object', () => {
  for (const doc of [null, 'app = "echo"', [], 42]) {
    assert.deepEqual(problemsOf(() => validateManifest(doc)).map((p) => p.path), ['']);
  }
});

const buildExample = `app = "site"

[build]
context = "web"
dockerfile = "docker/Dockerfile"
target = "serve"
args = { VERSION = "2" }
ignore = ["*.log"]

[processes.web]
`;

test('a manifest may build its image: [build] with its defaults and without an image', () => {
  const m = parseManifest(buildExample);
  assert.equal(m.image, undefined);
  assert.deepEqual(m.build, { context: 'web', dockerfile: 'docker/Dockerfile', target: 'serve', args: { VERSION: '2' }, ignore: ['*.log'] });
  assert.deepEqual(parseManifest('app = "site"\n[build]\n[processes.web]\n').build, { context: '.', dockerfile: 'Dockerfile', args: {}, ignore: [] });
});

test('image and [build] together are refused at the [build] table, with what to remove', () => {
  const problems = problemsOf(() => parseManifest(`app = "site"\nimage = "x"\n\n[build]\ncontext = "."\n\n[processes.web]\n`));
  assert.deepEqual(problems.map((p) => [p.path, p.line, p.column]), [['build', 4, 1]]);
  assert.match(problems[0]?.message ?? '', /mutually exclusive/);
});

test('a manifest with neither image nor [build] says it needs one of them', () => {
  const problems = problemsOf(() => parseManifest('app = "site"\n[processes.web]\n'));
  assert.deepEqual(problems.map((p) => p.path), ['image']);
  assert.match(problems[0]?.message ?? '', /\[build\]/);
});

test('a misspelt [build] key is reported at its line with the closest key', () => {
  const problems = problemsOf(() => parseManifest(buildExample.replace('dockerfile =', 'dockerfil =')));
  assert.deepEqual(problems.map((p) => [p.path, p.line, p.column, p.message]), [['build', 5, 1, 'unknown key "dockerfil" — did you mean "dockerfile"?']]);
});

const badBuilds: { name: string; from: string; to: string; path: string }[] = [
  { name: 'a Dockerfile outside the context', from: 'dockerfile = "docker/Dockerfile"', to: 'dockerfile = "../Dockerfile"', path: 'build.dockerfile' },
  { name: 'an absolute Dockerfile path', from: 'dockerfile = "docker/Dockerfile"', to: 'dockerfile = "/etc/Dockerfile"', path: 'build.dockerfile' },
  { name: 'an empty context', from: 'context = "web"', to: 'context = ""', path: 'build.context' },
  { name: 'a bad target', from: 'target = "serve"', to: 'target = "a b"', path: 'build.target' },
  { name: 'a bad build arg name', from: 'args = { VERSION = "2" }', to: 'args = { "2X" = "2" }', path: 'build.args.2X' },
  { name: 'a build arg that is not a string', from: 'args = { VERSION = "2" }', to: 'args = { VERSION = 2 }', path: 'build.args.VERSION' },
  { name: 'an empty ignore pattern', from: 'ignore = ["*.log"]', to: 'ignore = [""]', path: 'build.ignore[0]' },
];

for (const c of badBuilds) {
  test(`the manifest is invalid with ${c.name}, reported at ${c.path} on its line`, () => {
    const text = buildExample.replace(c.from, c.to);
    const problems = problemsOf(() => parseManifest(text));
    assert.deepEqual(problems.map((p) => p.path), [c.path], JSON.stringify(problems));
    const line = text.split('\n').findIndex((l) => l.startsWith(c.to)) + 1;
    assert.equal(problems[0]?.line, line);
  });
}

test('placement: spread "node" and node labels are read; another spread value or a bad label name is a problem at its path', () => {
  const ok = parseManifest(`${example}\n[processes.web.placement]\nspread = "node"\nlabels = { disk = "ssd" }\n`);
  assert.deepEqual(ok.processes.web?.placement, { spread: 'node', labels: { disk: 'ssd' } });
  assert.equal(parseManifest(example).processes.web?.placement, undefined);
  const problems = problemsOf(() => parseManifest(`${example}\n[processes.web.placement]\nspread = "zone"\nlabels = { "bad label" = "x" }\n`));
  const paths = problems.map((p) => p.path);
  assert.ok(paths.includes('processes.web.placement.spread'), JSON.stringify(problems));
  assert.ok(paths.some((p) => p.startsWith('processes.web.placement.labels')), JSON.stringify(problems));
});

const withVolume = `${example}
[[volumes]]
name = "data"
process = "web"
path = "/data"
`;

test('a volume parses with its defaults and a size in bytes', () => {
  const m = parseManifest(withVolume.replace('path = "/data"', 'path = "/data"\nsize = "1GiB"'));
  assert.deepEqual(m.volumes, [{ name: 'data', process: 'web', path: '/data', size: 1024 ** 3, per_instance: false, consistency: 'none' }]);
  assert.deepEqual(parseManifest(example).volumes, []);
});

test('a process with a volume keeps the default rolling deploy (run stop-then-start) and immediate', () => {
  assert.equal(parseManifest(withVolume).deploy.strategy, 'rolling');
  assert.equal(parseManifest(`${withVolume}\n[deploy]\nstrategy = "immediate"\n`).deploy.strategy, 'immediate');
  assert.equal(parseManifest(`${withVolume}\n[deploy]\nmax_surge = 0\nmax_unavailable = 1\n`).deploy.max_surge, 0);
});

const badVolumes: { name: string; text: string; path: string; message: RegExp }[] = [
  { name: 'bluegreen', text: `${withVolume}\n[deploy]\nstrategy = "bluegreen"\n`, path: 'deploy.strategy', message: /bluegreen would run the new instances beside the old ones: process web mounts a volume, which has one writer/ },
  { name: 'a surge', text: `${withVolume}\n[deploy]\nmax_surge = 2\n`, path: 'deploy.max_surge', message: /a surge would start a new instance before the old one stops/ },
  { name: 'a volume of a missing process', text: withVolume.replace('process = "web"\npath', 'process = "db"\npath'), path: 'volumes[0].process', message: /names no process; define \[processes.db\]/ },
  { name: 'a relative path', text: withVolume.replace('"/data"', '"data"'), path: 'volumes[0].path', message: /absolute path/ },
  { name: 'a bad size', text: withVolume.replace('path = "/data"', 'path = "/data"\nsize = "lots"'), path: 'volumes[0].size', message: /size like/ },
  { name: 'a hook without consistency = "hook"', text: withVolume.replace('path = "/data"', 'path = "/data"\nhook = ["sync"]'), path: 'volumes[0].consistency', message: /a hook runs only with consistency = "hook"/ },
  { name: 'consistency = "hook" without a hook', text: withVolume.replace('path = "/data"', 'path = "/data"\nconsistency = "hook"'), path: 'volumes[0].hook', message: /needs the command/ },
  { name: 'a shared volume on a process of two instances', text: withVolume.replace('cmd =', 'count = 2\ncmd ='), path: 'volumes[0].per_instance', message: /set per_instance = true/ },
  { name: 'the same volume twice', text: `${withVolume}\n[[volumes]]\nname = "data"\nprocess = "web"\npath = "/other"\n`, path: 'volumes[1].name', message: /defined twice/ },
  { name: 'keep without snapshot_every', text: withVolume.replace('path = "/data"', 'path = "/data"\nkeep = 3'), path: 'volumes[0].keep', message: /add snapshot_every = "24h"/ },
  { name: 'keep_for without snapshot_every', text: withVolume.replace('path = "/data"', 'path = "/data"\nkeep_for = "5d"'), path: 'volumes[0].keep_for', message: /add snapshot_every = "24h"/ },
  { name: 'a snapshot period in seconds', text: withVolume.replace('path = "/data"', 'path = "/data"\nsnapshot_every = "30s"'), path: 'volumes[0].snapshot_every', message: /duration like "30m", "24h" or "7d"/ },
  { name: 'a snapshot period under a minute', text: withVolume.replace('path = "/data"', 'path = "/data"\nsnapshot_every = "0m"'), path: 'volumes[0].snapshot_every', message: /at least "1m"/ },
  { name: 'keep = 0', text: withVolume.replace('path = "/data"', 'path = "/data"\nsnapshot_every = "1h"\nkeep = 0'), path: 'volumes[0].keep', message: /at least 1/ },
];

test('a snapshot schedule parses: periods in m, h or d, keep and keep_for', () => {
  const m = parseManifest(withVolume.replace('path = "/data"', 'path = "/data"\nsnapshot_every = "1d"\nkeep = 7\nkeep_for = "36h"'));
  assert.deepEqual(m.volumes[0], { name: 'data', process: 'web', path: '/data', per_instance: false, consistency: 'none', snapshot_every: 86_400_000, keep: 7, keep_for: 36 * 3_600_000 });
});

for (const c of badVolumes) {
  test(`the manifest is invalid with ${c.name} for a process with volumes, reported at ${c.path}`, () => {
    const problems = problemsOf(() => parseManifest(c.text));
    assert.deepEqual(problems.map((p) => p.path), [c.path], JSON.stringify(problems));
    assert.match(problems[0]?.message ?? '', c.message);
    assert.ok(problems[0]?.line, 'reported at a line');
  });
}

test('a misspelt volume key gets a suggestion', () => {
  const problems = problemsOf(() => parseManifest(withVolume.replace('path = "/data"', 'path = "/data"\nper_instanse = true')));
  assert.match(problems[0]?.message ?? '', /did you mean "per_instance"/);
});
