// Private endpoints and tunnels end to end: a real `pier server`, real Docker, the real CLI. A
// private endpoint is in no edge snapshot and answers on no public address; `pier port-forward`
// reaches it and carries 64 MiB each way intact, 50 connections at once, and a PROXY v2 header
// naming the CLI's address; `pier connect` pipes stdio; tokens without the right, for another app,
// or expired are refused with exit 4; each session is in the audit trail with its token and bytes.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventView, StatusView } from '../../api/views.js';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, type CliResult, startPierServer } from '../support/pier-process.js';
import { exchange, freePort } from '../support/tcp-client.js';

const MIB = 1024 * 1024;
const BLOB = 64 * MIB;
const ECHO = 5432;
const SINK = 7001;
const BLOB_PORT = 7002;
const HEADER = 7003;

// busybox nc's listen backlog is the number of -l flags it is given (`nc -ll`: 2). The echo takes 50
// connections at once: with a backlog of 2 its accept queue overflows, the kernel answers with SYN
// cookies and then resets connections it has no room for (ECONNRESET, with or without a tunnel in
// between). 64 flags: a backlog of 64.
const LISTEN_64 = `-${'l'.repeat(64)}`;

// One container: an echo (8080), a sink answering the sha256 of what it read (8081), a 64 MiB
// random blob with its sha256 beside it (8082, 8084), and the first 28 bytes sent back (8083:
// a PROXY v2 header for IPv4 is 28 bytes).
const manifest = (image: string, publicPort: number) => `
app = "vault"
image = "${image}"

[processes.tools]
cmd = ["sh", "-c", "head -c ${BLOB} /dev/urandom > /tmp/blob && sha256sum /tmp/blob > /tmp/blob.sha && (nc -ll -p 8081 -e sha256sum &) && (nc -ll -p 8082 -e cat /tmp/blob &) && (nc -ll -p 8083 -e head -c 28 &) && (nc -ll -p 8084 -e cat /tmp/blob.sha &) && exec nc ${LISTEN_64} -p 8080 -e cat"]
count = 1

[[endpoints]]
process = "tools"
port = ${ECHO}
target = 8080
access = "private"

[[endpoints]]
process = "tools"
port = ${SINK}
target = 8081
access = "private"

[[endpoints]]
process = "tools"
port = ${BLOB_PORT}
target = 8082
access = "private"

[[endpoints]]
process = "tools"
port = ${HEADER}
target = 8083
access = "private"
proxy_protocol = "v2"

[[endpoints]]
process = "tools"
port = ${publicPort}
target = 8084
`;

const other = (image: string) => `
app = "other"
image = "${image}"
[processes.web]
cmd = ["sh", "-c", "exec nc -ll -p 8080 -e cat"]
count = 1
[[endpoints]]
process = "web"
port = ${ECHO}
target = 8080
access = "private"
`;

interface Forward {
  port: number;
  /** What the CLI wrote so far (its per-connection warnings say why a connection failed). */
  stderr: () => string;
}

/** `pier port-forward … 0:REMOTE` in the background; resolves with the local port it listens on. */
async function portForward(t: TestContext, env: NodeJS.ProcessEnv, app: string, remote: number): Promise<Forward> {
  const child = spawn(process.execPath, [PIER_BIN, 'port-forward', '--app', app, `0:${remote}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`port-forward did not start:\n${stderr}`)), 30_000);
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /forwarding 127\.0\.0\.1:(\d+) /.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), stderr: () => stderr });
      }
    });
    child.once('close', (code) => reject(new Error(`port-forward exited ${code}:\n${stderr}`)));
  });
}

/** How `got` differs from `want`: lengths, the first differing offset, and whose bytes it holds. */
function mismatch(got: Buffer | Error, want: Buffer, others: Buffer[]): string {
  if (got instanceof Error) return `an error: ${(got as NodeJS.ErrnoException).code ?? got.message}`;
  let at = 0;
  while (at < got.length && at < want.length && got[at] === want[at]) at++;
  const kind = got.length === 0 ? 'empty' : got.length < want.length && at === got.length ? 'truncated (a prefix of its own bytes)' : others.some((o) => o !== want && o.subarray(0, 64).equals(got.subarray(0, 64))) ? "starts with another connection's bytes" : 'different bytes';
  return `${kind}: ${got.length} of ${want.length} bytes, first difference at offset ${at}`;
}

/** Connects and reads everything until the peer's FIN, sending nothing. */
function download(port: number): Promise<Buffer> {
  return exchange('127.0.0.1', port, Buffer.alloc(0));
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function refusedConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function pier(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runPier(args, env, { timeoutMs: 60_000 });
}

test('private endpoints are reached only through pier port-forward and pier connect, with the right token, and are audited', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const publicPort = await freePort();
  const file = join(server.dir, 'pier.toml');
  await writeFile(file, manifest(image, publicPort));
  const deployed = await pier(['deploy', '-c', file], server.env);
  assert.equal(deployed.code, 0, `deploy failed:\n${deployed.stderr}\n${server.stderr().slice(-3000)}`);
  assert.match(deployed.stdout, new RegExp(`:${ECHO} private: pier port-forward --app vault LOCAL:${ECHO}`));
  assert.doesNotMatch(deployed.stderr, /is not served/, 'a private endpoint is no warning');
  const status = JSON.parse((await pier(['status', '--app', 'vault', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(status.app.id));
  await writeFile(join(server.dir, 'other.toml'), other(image));
  const second = await pier(['deploy', '-c', join(server.dir, 'other.toml')], server.env);
  assert.equal(second.code, 0, second.stderr);
  const otherStatus = JSON.parse((await pier(['status', '--app', 'other', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(otherStatus.app.id));

  await t.test('a private endpoint is in no edge snapshot and answers on no public address', async () => {
    const res = await fetch(`${server.apiUrl}/v1/edge/config`, { headers: { authorization: `Bearer ${server.token}` } });
    const snapshot = (await res.json()) as EdgeConfig;
    assert.deepEqual(snapshot.endpoints.map((e) => e.name), [`vault/${publicPort}`]);
    const privatePorts = new Set([ECHO, SINK, BLOB_PORT, HEADER]);
    assert.ok(snapshot.endpoints.every((e) => e.bind.every((b) => !privatePorts.has(b.port))));
    // The public one answers through the edge; the private ones are not there.
    const sha = (await exchange('127.0.0.1', publicPort, '')).toString();
    assert.match(sha, /^[0-9a-f]{64} {2}\/tmp\/blob/);
    for (const port of [SINK, BLOB_PORT, HEADER]) assert.notEqual(await refusedConnect(port), 'connected', `:${port} on 127.0.0.1`);
    const views = status.endpoints.filter((e) => privatePorts.has(e.port));
    assert.equal(views.length, 4);
    assert.ok(views.every((e) => e.access === 'private' && e.addresses.length === 0 && e.served.state === 'private'));
    const table = await pier(['status', '--app', 'vault'], server.env);
    assert.match(table.stdout, /private \(pier port-forward\)/);
  });

  await t.test('64 MiB each way arrive intact, and 50 connections at once each get their own bytes back', async (t2) => {
    const sink = await portForward(t2, server.env, 'vault', SINK);
    const upload = randomBytes(BLOB);
    const answer = await exchange('127.0.0.1', sink.port, upload);
    assert.equal(answer.toString().split(/\s/)[0], sha256(upload), 'the app read exactly the 64 MiB sent');

    const blobPort = await portForward(t2, server.env, 'vault', BLOB_PORT);
    const blob = await download(blobPort.port);
    assert.equal(blob.length, BLOB);
    const expected = (await exchange('127.0.0.1', publicPort, '')).toString().split(/\s/)[0];
    assert.equal(sha256(blob), expected, 'the 64 MiB read match the file in the container');

    const echo = await portForward(t2, server.env, 'vault', ECHO);
    const payloads = Array.from({ length: 50 }, () => randomBytes(64 * 1024));
    // Every connection is waited for, so that a failure reports the first one that failed and why.
    const answers = await Promise.all(payloads.map((p) => exchange('127.0.0.1', echo.port, p).catch((err: Error) => err)));
    answers.forEach((a, i) => {
      const want = payloads[i] as Buffer;
      assert.ok(Buffer.isBuffer(a) && a.equals(want), `connection ${i} got its own bytes back; it got ${mismatch(a, want, payloads)}\nport-forward said:\n${echo.stderr()}`);
    });
  });

  await t.test('an endpoint with proxy_protocol = "v2" gets a PROXY v2 header naming the CLI user', async (t2) => {
    const forward = await portForward(t2, server.env, 'vault', HEADER);
    const header = await exchange('127.0.0.1', forward.port, '');
    // Seen once in CI: 0 bytes and a FIN (a refused tunnel closes the local socket so). What the
    // CLI said, and the app's recent events, tell why if it comes back.
    if (header.length !== 28) {
      const events = await pier(['events', '--app', 'vault', '--since', '5m'], server.env);
      assert.fail(`${header.length} bytes instead of 28\nport-forward said:\n${forward.stderr()}\nevents:\n${events.stdout}${events.stderr}`);
    }
    assert.equal(header.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
    assert.equal(header[12], 0x21, 'version 2, PROXY');
    assert.equal(header[13], 0x11, 'TCP over IPv4');
    assert.equal([...header.subarray(16, 20)].join('.'), '127.0.0.1', 'the source is the CLI as the API sees it');
    assert.equal(header.readUInt16BE(26), HEADER, "the destination port is the endpoint's");
  });

  await t.test('pier connect pipes stdin and stdout to the endpoint, and ends when both sides have', async () => {
    const child = spawn(process.execPath, [PIER_BIN, 'connect', '--app', 'vault', String(ECHO)], { env: server.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdin.end('over stdio\n');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, err);
    assert.equal(Buffer.concat(out).toString(), 'over stdio\n');
  });

  await t.test('tokens without the connect right, for another app, or expired are refused with exit 4', async () => {
    const make = async (...args: string[]) => {
      const r = await pier(['tokens', 'create', '--json', ...args], server.env);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { secret: string }).secret;
    };
    const read = await make('--scope', 'read');
    const forOther = await make('--scope', 'connect', '--app', 'other');
    const expired = await make('--scope', 'connect', '--app', 'vault', '--ttl', '1s');
    const unbound = await pier(['tokens', 'create', '--scope', 'connect'], server.env);
    assert.equal(unbound.code, 2, 'a connect token must name its app');

    const noScope = await pier(['port-forward', '--app', 'vault', `0:${ECHO}`], { ...server.env, PIER_TOKEN: read });
    assert.equal(noScope.code, 4, noScope.stderr);
    assert.match(noScope.stderr, /E_FORBIDDEN/);
    const across = await pier(['port-forward', '--app', 'vault', `0:${ECHO}`], { ...server.env, PIER_TOKEN: forOther });
    assert.equal(across.code, 4, across.stderr);
    assert.match(across.stderr, /E_APP_NOT_FOUND/);
    const viaWs = await pier(['connect', '--app', 'vault', String(ECHO)], { ...server.env, PIER_TOKEN: forOther });
    assert.equal(viaWs.code, 4, viaWs.stderr);
    await new Promise((r) => setTimeout(r, 1500));
    const late = await pier(['port-forward', '--app', 'vault', `0:${ECHO}`], { ...server.env, PIER_TOKEN: expired });
    assert.equal(late.code, 4, late.stderr);
    assert.match(late.stderr, /E_UNAUTHENTICATED/);

    // The token for "other" works there.
    const child = spawn(process.execPath, [PIER_BIN, 'connect', '--app', 'other', String(ECHO)], { env: { ...server.env, PIER_TOKEN: forOther }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stdin.end('mine\n');
    assert.equal(await new Promise((resolve) => child.once('close', resolve)), 0);
    assert.equal(Buffer.concat(out).toString(), 'mine\n');
  });

  await t.test('each session is in the audit trail with its kind, token, source, bytes and duration', async () => {
    const r = await pier(['audit', '--app', 'vault', '--json'], server.env);
    assert.equal(r.code, 0, r.stderr);
    const sessions = (JSON.parse(r.stdout) as EventView[]).filter((e) => e.type === 'audit.session');
    const data = sessions.map((e) => e.data as { kind: string; token: { id: string; name: string }; source: string; port: number; bytesIn: number; bytesOut: number; durationMs: number; errorCode: string | null });
    const upload = data.find((d) => d.kind === 'port-forward' && d.port === SINK);
    assert.ok(upload, JSON.stringify(data.slice(0, 3)));
    assert.equal(upload.bytesIn, BLOB);
    assert.equal(upload.source, '127.0.0.1');
    assert.ok(upload.token.id.startsWith('tok_') && upload.token.name);
    assert.ok(upload.durationMs >= 0);
    const down = data.find((d) => d.kind === 'port-forward' && d.port === BLOB_PORT);
    assert.equal(down?.bytesOut, BLOB);
    assert.equal(data.filter((d) => d.kind === 'port-forward' && d.port === ECHO).length, 50);
    assert.ok(data.some((d) => d.kind === 'connect' && d.errorCode === null));
  });
});
