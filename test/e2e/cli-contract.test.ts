// The CLI's contract with scripts, against a real `pier server`: every command that takes --json
// prints nothing but JSON on stdout (the list comes from the command definitions, so a new one
// without an entry here fails); token scopes and app binding give the documented exit codes;
// `pier login` checks the token before it stores it.
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusView, TokenView } from '../../api/views.js';
import { ApiClient } from '../../cli/api-client.js';
import { commandTree, leafCommands } from '../../cli/command-tree.js';
import { main } from '../../cli/main.js';
import { removeRegistryImages, writeFiles } from '../support/build-context.js';
import { removeInstallationContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer, type CliResult, type PierServer } from '../support/pier-process.js';

const manifest = (app: string, image: string, port: number, count: number) => `app = "${app}"
image = "${image}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; echo hello from ${app}; nc -ll -p 8080 -e cat & wait"]
count = ${count}

[[endpoints]]
process = "web"
port = ${port}
target = 8080
`;

interface Ctx {
  server: PierServer;
  file: string;
  /** Creates a read token and returns its id (for `tokens revoke`). */
  tokenId(): Promise<string>;
  /** Writes a manifest with [build] and its context; returns the manifest's path. */
  buildFile(): Promise<string>;
}

/** How to run each command that supports --json; `lines` marks newline-delimited JSON. */
/**
 * `fails`: on this single engine the command can only fail (its success with --json is checked
 * where it can succeed: `nodes drain|activate` in test/api/runtime/swarm-services.test.ts); it
 * must then print nothing on stdout and the error code on stderr.
 */
const JSON_COMMANDS: Record<string, { args: (c: Ctx) => Promise<string[]> | string[]; lines?: boolean; fails?: { exitCode: number; error: string } }> = {
  deploy: { args: (c) => ['deploy', '-c', c.file] },
  build: { args: (c) => c.buildFile().then((f) => ['build', '-c', f]), lines: true },
  status: { args: () => ['status'] },
  'apps list': { args: () => ['apps', 'list'] },
  'apps delete': {
    // An app of its own (no instances), deployed for this, so the others keep theirs.
    args: async (c) => {
      const beta = await readFile(join(c.server.dir, 'beta.toml'), 'utf8');
      const file = join(c.server.dir, 'gamma.toml');
      await writeFile(file, beta.replaceAll('beta', 'gamma').replace(/^port = (\d+)$/m, (_, p: string) => `port = ${Number(p) + 2}`));
      const r = await runPier(['deploy', '-c', file], c.server.env);
      assert.equal(r.code, 0, r.stderr);
      return ['apps', 'delete', 'gamma', '--yes'];
    },
  },
  events: { args: () => ['events', '--app', 'alpha'] },
  logs: { args: () => ['logs', '--app', 'alpha'], lines: true },
  releases: { args: () => ['releases', '--app', 'alpha'] },
  rollback: { args: () => ['rollback', '1', '--app', 'alpha'] },
  scale: { args: () => ['scale', 'web=1', '--app', 'alpha'] },
  describe: { args: () => ['describe', 'app', 'alpha'] },
  validate: { args: (c) => ['validate', '-c', c.file] },
  'tokens create': { args: () => ['tokens', 'create', '--scope', 'read', '--name', 'json test'] },
  'tokens list': { args: () => ['tokens', 'list'] },
  'tokens revoke': { args: async (c) => ['tokens', 'revoke', await c.tokenId(), '--yes'] },
  'tokens rotate': { args: async (c) => ['tokens', 'rotate', await c.tokenId()] },
  // A day's overlap: the contract's other commands may still use the secret read at start.
  'admin-token rotate': { args: () => ['admin-token', 'rotate', '--overlap', '24h'] },
  login: { args: (c) => ['login', '--api', c.server.apiUrl, '--token', c.server.token] },
  edges: { args: () => ['edges'] },
  doctor: { args: () => ['doctor'] },
  'ips list': { args: () => ['ips', 'list'] },
  'certs list': { args: () => ['certs', 'list', '--app', 'alpha'] },
  'certs add': {
    args: async (c) => {
      const file = join(c.server.dir, 'not-a-cert.pem');
      await writeFile(file, 'not a certificate\n');
      return ['certs', 'add', '--app', 'alpha', '--cert', file, '--key', file];
    },
    fails: { exitCode: 1, error: 'E_CERT_INVALID' },
  },
  'certs describe': { args: () => ['certs', 'describe', 'cert_nope'], fails: { exitCode: 1, error: 'E_CERT_NOT_FOUND' } },
  'certs remove': { args: () => ['certs', 'remove', 'cert_nope', '--yes'], fails: { exitCode: 1, error: 'E_CERT_NOT_FOUND' } },
  'ips allocate': { args: () => ['ips', 'allocate', '--app', 'beta', '--v4'] },
  'ips describe': { args: async (c) => ['ips', 'describe', await betaAddress(c)] },
  // beta was not deployed again: nothing binds its address.
  'ips release': { args: async (c) => ['ips', 'release', await betaAddress(c), '--yes'] },
  'nodes list': { args: () => ['nodes', 'list'] },
  'nodes describe': { args: () => ['nodes', 'describe', 'local'] },
  'nodes drain': { args: () => ['nodes', 'drain', 'local'], fails: { exitCode: 1, error: 'E_NOT_A_SWARM' } },
  'nodes activate': { args: () => ['nodes', 'activate', 'local'], fails: { exitCode: 1, error: 'E_NOT_A_SWARM' } },
  'registry gc': { args: () => ['registry', 'gc', '--dry-run'] },
  // Volumes of their own on alpha (no instance mounts them), on the server's default dir driver.
  'volumes create': { args: () => ['volumes', 'create', 'vc', '--app', 'alpha'] },
  'volumes list': { args: () => ['volumes', 'list', '--app', 'alpha'] },
  'volumes describe': { args: async (c) => (await volume(c, 'vdesc'), ['volumes', 'describe', 'vdesc', '--app', 'alpha']) },
  'volumes delete': { args: async (c) => (await volume(c, 'vdel'), ['volumes', 'delete', 'vdel', '--app', 'alpha', '--yes']) },
  'volumes undelete': {
    args: async (c) => {
      await volume(c, 'vund');
      await client(c).deleteVolume('alpha', 'vund');
      return ['volumes', 'undelete', 'vund', '--app', 'alpha'];
    },
  },
  'volumes move': { args: async (c) => (await volume(c, 'vmove'), ['volumes', 'move', 'vmove', '--app', 'alpha', '--to', 'spare']) },
  'volumes snapshot': { args: async (c) => (await volume(c, 'vsnap'), ['volumes', 'snapshot', 'vsnap', '--app', 'alpha']) },
  'volumes restore': { args: async (c) => ['volumes', 'restore', await snapshot(c, 'vres'), '--app', 'alpha'] },
  'volumes export': { args: async (c) => ['volumes', 'export', await snapshot(c, 'vexp'), '--app', 'alpha', '-o', join(c.server.dir, 'vexp.pier-snapshot')] },
  'volumes import': {
    args: async (c) => {
      const file = join(c.server.dir, 'vimp.pier-snapshot');
      await client(c).exportSnapshot('alpha', await snapshot(c, 'vimp'), file);
      return ['volumes', 'import', file, '--app', 'alpha', '--root', 'spare'];
    },
  },
  'snapshots list': { args: () => ['snapshots', 'list', '--app', 'alpha'] },
  'snapshots describe': { args: async (c) => ['snapshots', 'describe', await snapshot(c, 'sdesc'), '--app', 'alpha'] },
  'snapshots delete': { args: async (c) => ['snapshots', 'delete', await snapshot(c, 'sdel'), '--app', 'alpha', '--yes'] },
  audit: { args: () => ['audit', '--app', 'alpha'] },
  // Environments: previews of alpha (their ports come from the preview range), made for each command.
  'env list': { args: () => ['env', 'list'] },
  'env describe': { args: () => ['env', 'describe', 'production'] },
  'env extend': { args: async (c) => (await preview(c, 'pr-1'), ['env', 'extend', 'pr-1', '--ttl', '3h']) },
  'env destroy': { args: async (c) => (await preview(c, 'pr-2'), ['env', 'destroy', 'pr-2', '--yes']) },
  'env diff': { args: () => ['env', 'diff', 'production', 'production'] },
  'secrets list': { args: () => ['secrets', 'list', '--app', 'alpha'] },
  'secrets set': { args: async (c) => (await preview(c, 'pr-3'), ['secrets', 'set', '--app', 'alpha', '--env', 'pr-3', 'CONTRACT_KEY=v1']) },
  'secrets unset': { args: async (c) => (await preview(c, 'pr-3'), ['secrets', 'unset', '--app', 'alpha', '--env', 'pr-3', 'CONTRACT_KEY']) },
  'secrets copy': {
    args: async (c) => {
      await preview(c, 'pr-3');
      await preview(c, 'pr-4');
      await cli(c, ['secrets', 'set', '--app', 'alpha', '--env', 'pr-3', 'COPIED_KEY=v1']);
      return ['secrets', 'copy', '--app', 'alpha', '--from', 'pr-3', '--to', 'pr-4', 'COPIED_KEY'];
    },
  },
  promote: { args: async (c) => (await preview(c, 'pr-3'), ['promote', '--from', 'pr-3', '--to', 'pr-5']) },
};

/**
 * Setup that is not the command under test goes through the API with the CLI's own client, in
 * this process: a `pier` process each would cost a Node start-up (a second or more under load).
 */
function client(c: Ctx, environment?: string): ApiClient {
  return new ApiClient({ apiUrl: c.server.apiUrl, token: c.server.token, environment });
}

/** Deploys alpha's manifest to the preview `name` without waiting (`pier deploy --env NAME --detach`). */
async function preview(c: Ctx, name: string): Promise<void> {
  await client(c, name).deploy({ manifest: await readFile(c.file, 'utf8'), file: c.file }, randomUUID());
}

/** The dedicated address `ips allocate` gave beta. */
async function betaAddress(c: Ctx): Promise<string> {
  const listed = parsed(await runPier(['ips', 'list', '--app', 'beta', '--json'], c.server.env), 'ips list --app beta') as { ips: { address: string }[] };
  assert.ok(listed.ips[0], 'beta has an address');
  return listed.ips[0].address;
}

async function cli(c: Ctx, args: string[]): Promise<CliResult> {
  const r = await runPier(args, c.server.env);
  assert.equal(r.code, 0, `pier ${args.join(' ')}:\n${r.stderr}`);
  return r;
}

async function volume(c: Ctx, name: string): Promise<void> {
  await client(c).createVolume('alpha', { name });
}

/** A snapshot of a new volume; its id. */
async function snapshot(c: Ctx, name: string): Promise<string> {
  await volume(c, name);
  return (await client(c).snapshotVolume('alpha', name)).snapshot.id;
}

function parsed(r: CliResult, what: string): unknown {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stderr}`);
  try {
    return JSON.parse(r.stdout);
  } catch {
    assert.fail(`${what}: stdout is not JSON:\n${r.stdout}`);
  }
}

test('the CLI contract with scripts', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  // A pool of its own in 127.0.0.0/8, for the `ips` commands.
  // A second volume root, for `volumes move`.
  const spare = await mkdtemp(join(tmpdir(), 'pier-contract-root-'));
  t.after(() => rm(spare, { recursive: true, force: true }));
  const server = await startPierServer(t, {}, { args: ['--volume-root', `spare=${spare}`, '--ip-pool', `127.${randomInt(64, 250)}.${randomInt(0, 256)}.0/24`] });
  const port = 9100 + Math.floor(Math.random() * 800);
  const file = join(server.dir, 'alpha.toml');
  await writeFile(file, manifest('alpha', image, port, 1));
  await writeFile(join(server.dir, 'beta.toml'), manifest('beta', image, port + 1, 0));
  const first = await runPier(['deploy', '-c', file], server.env);
  assert.equal(first.code, 0, first.stderr);
  const alpha = parsed(await runPier(['status', '--app', 'alpha', '--json'], server.env), 'status') as StatusView;
  // Every app of this server, previews included (they are other apps, with ids of their own).
  t.after(() => removeInstallationContainers(alpha.app.id));
  assert.equal((await runPier(['deploy', '-c', join(server.dir, 'beta.toml')], server.env)).code, 0);

  const createRead = async (extra: string[] = []): Promise<{ token: TokenView; secret: string }> =>
    parsed(await runPier(['tokens', 'create', '--scope', 'read', ...extra, '--json'], server.env), 'tokens create') as { token: TokenView; secret: string };
  const buildFile = async (): Promise<string> => {
    const registryHost = `127.0.0.1:${(await readFile(join(server.dir, 'data', 'registry', 'port'), 'utf8')).trim()}`;
    t.after(() => removeRegistryImages(registryHost));
    await writeFiles(join(server.dir, 'gamma'), { 'pier.toml': 'app = "gamma"\n[build]\n[processes.web]\n', Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'hi\n' });
    return join(server.dir, 'gamma', 'pier.toml');
  };
  const ctx: Ctx = { server, file, tokenId: async () => (await new ApiClient({ apiUrl: server.apiUrl, token: server.token }).createToken({ scope: 'read' })).token.id, buildFile };

  await t.test('every command with --json prints only JSON on stdout', async () => {
    const withJson = leafCommands(await commandTree(main))
      .filter((c) => c.args.some((a) => a.name === 'json'))
      .map((c) => c.path.join(' '));
    assert.deepEqual(withJson.sort(), Object.keys(JSON_COMMANDS).sort(), 'each command with --json needs an entry in JSON_COMMANDS');
    for (const name of withJson) {
      const entry = JSON_COMMANDS[name];
      assert.ok(entry);
      const args = [...(await entry.args(ctx)), '--json'];
      // login writes the config file: give it its own, so the other commands keep theirs.
      const env = name === 'login' ? { ...server.env, XDG_CONFIG_HOME: join(server.dir, 'login-config') } : server.env;
      const r = await runPier(args, env, { timeoutMs: 120_000 });
      if (entry.fails) {
        assert.equal(r.code, entry.fails.exitCode, `pier ${args.join(' ')}:\n${r.stderr}`);
        assert.equal(r.stdout, '', `pier ${args.join(' ')} printed on stdout while failing`);
        assert.match(r.stderr, new RegExp(entry.fails.error));
      } else if (entry.lines) {
        assert.equal(r.code, 0, `pier ${args.join(' ')}:\n${r.stderr}`);
        const lines = r.stdout.split('\n').filter(Boolean);
        assert.ok(lines.length > 0, `pier ${args.join(' ')} printed nothing`);
        for (const line of lines) JSON.parse(line);
      } else {
        parsed(r, `pier ${args.join(' ')}`);
      }
    }
  });

  await t.test('a read token cannot deploy: exit 4, E_FORBIDDEN', async () => {
    const { secret } = await createRead();
    const r = await runPier(['deploy', '-c', file], { ...server.env, PIER_TOKEN: secret });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /E_FORBIDDEN/);
    assert.equal((await runPier(['status', '--app', 'alpha', '--json'], { ...server.env, PIER_TOKEN: secret })).code, 0, 'but it can read');
  });

  await t.test('a token for app alpha cannot see app beta: exit 1, E_APP_NOT_FOUND', async () => {
    const { secret } = await createRead(['--app', 'alpha']);
    const env = { ...server.env, PIER_TOKEN: secret };
    for (const args of [['status', '--app', 'beta'], ['releases', '--app', 'beta'], ['events', '--app', 'beta'], ['describe', 'app', 'beta']]) {
      const r = await runPier(args, env);
      assert.equal(r.code, 1, `pier ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /E_APP_NOT_FOUND/);
    }
    const apps = parsed(await runPier(['apps', 'list', '--json'], env), 'apps list') as { apps: { name: string }[] };
    assert.deepEqual(apps.apps.map((a) => a.name), ['alpha']);
    const tokens = await runPier(['tokens', 'list'], env);
    assert.equal(tokens.code, 4, 'a read token cannot list tokens');
  });

  await t.test('a revoked token gets exit 4', async () => {
    const { token, secret } = await createRead();
    assert.equal((await runPier(['tokens', 'revoke', token.id, '--yes'], server.env)).code, 0);
    assert.equal((await runPier(['status'], { ...server.env, PIER_TOKEN: secret })).code, 4);
  });

  await t.test('login checks the token, then stores it (mode 0600); PIER_TOKEN still overrides it', async () => {
    const env = { ...server.env, XDG_CONFIG_HOME: join(server.dir, 'login2') };
    const configFile = join(server.dir, 'login2', 'pier', 'config.json');
    const bad = await runPier(['login', '--api', server.apiUrl, '--token', 'pier_wrong'], env);
    assert.equal(bad.code, 4, bad.stderr);
    await assert.rejects(stat(configFile), 'nothing stored for a bad token');

    const { secret } = await createRead();
    const child = spawn(process.execPath, [PIER_BIN, 'login', '--api', server.apiUrl, '--token-stdin'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end(`${secret}\n`);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, out);
    assert.equal((await stat(configFile)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(configFile, 'utf8')), { apiUrl: server.apiUrl, token: secret });

    // The stored read token works for reading and is refused for managing tokens; the
    // environment beats the file.
    parsed(await runPier(['apps', 'list', '--json'], env), 'apps list with the stored token');
    assert.equal((await runPier(['tokens', 'list'], env)).code, 4);
    assert.equal((await runPier(['tokens', 'list', '--json'], { ...env, PIER_TOKEN: server.token })).code, 0);
  });
});
