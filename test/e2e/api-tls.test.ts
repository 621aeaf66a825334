// The API over HTTPS with a certificate the operator gave (made here by openssl), end to end: the
// real `pier server` (its edge follows the feed over the same pinned HTTPS), the real CLI. Without
// a pin the CLI refuses the self-signed certificate and says how to pin it; a wrong pin is refused
// before the token is sent and stores nothing; the right pin (typed as openssl prints it) is kept
// and every later command uses it, a port-forward over wss:// included. Off-loopback starts (a
// self-signed certificate, made once, reused; plain HTTP refused) are in api-tls-netns.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EdgeView, StatusView } from '../../api/views.js';
import { certificateFingerprint, fingerprintHex } from '../../api/tls/certificate-fingerprint.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer } from '../support/pier-process.js';
import { exchange } from '../support/tcp-client.js';

const run = promisify(execFile);

const manifest = (image: string) => `
app = "tlsapp"
image = "${image}"
[processes.tools]
cmd = ["sh", "-c", "exec nc -ll -p 8080 -e cat"]
count = 1
[[endpoints]]
process = "tools"
port = 5432
target = 8080
access = "private"
`;

test('an API serving a given certificate is used only with its fingerprint pinned, by every command, port-forward over wss included', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const certDir = await mkdtemp(join(tmpdir(), 'pier-api-cert-'));
  t.after(() => rm(certDir, { recursive: true, force: true }));
  const certFile = join(certDir, 'cert.pem');
  const keyFile = join(certDir, 'key.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=pier-e2e', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2', '-keyout', keyFile, '-out', certFile]);
  const fingerprint = certificateFingerprint(await readFile(certFile, 'utf8'));
  const hex = new X509Certificate(await readFile(certFile)).fingerprint256;
  assert.equal(fingerprintHex(fingerprint), hex);

  const server = await startPierServer(t, {}, { args: ['--api-tls-cert', certFile, '--api-tls-key', keyFile] });
  assert.match(server.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  // The start lines come after "API on", which is all startPierServer waits for.
  for (let i = 0; i < 100 && !server.stdout().includes('admin token in'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(server.stdout().includes(`API certificate fingerprint ${fingerprint}`), server.stdout());
  assert.ok(server.stdout().includes(`--fingerprint ${fingerprint}`), 'the start lines say how other machines log in');
  // Plain HTTP on the same port is no way in.
  const plain = await fetch(server.apiUrl.replace('https:', 'http:') + '/v1/apps', { headers: { authorization: `Bearer ${server.token}` } }).then((r) => r.status, () => 'refused');
  assert.notEqual(plain, 200);

  const home = await mkdtemp(join(tmpdir(), 'pier-login-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...server.env, XDG_CONFIG_HOME: home };
  const configFile = join(home, 'pier', 'config.json');
  const noFile = () => readFile(configFile, 'utf8').then(() => false, () => true);

  await t.test('without a pin the self-signed certificate is refused, with the way to pin it', async () => {
    const r = await runPier(['login', '--api', server.apiUrl, '--token', server.token], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E_TLS_UNTRUSTED/);
    assert.ok(r.stderr.includes(fingerprint), 'it shows what the server presented');
    assert.match(r.stderr, /pier login --api URL --fingerprint/);
    assert.ok(await noFile(), 'nothing stored');
  });

  await t.test('a wrong pin is refused with both fingerprints, a non-zero exit, and nothing stored', async () => {
    const wrong = certificateFingerprint((await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=other', '-days', '1', '-keyout', join(certDir, 'other.key')])).stdout);
    const r = await runPier(['login', '--url', server.apiUrl, '--token', server.token, '--fingerprint', wrong], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /E_TLS_FINGERPRINT_MISMATCH/);
    assert.ok(r.stderr.includes(wrong) && r.stderr.includes(fingerprint), r.stderr);
    assert.ok(await noFile(), 'nothing stored');
    const bad = await runPier(['login', '--api', server.apiUrl, '--token', server.token, '--fingerprint', 'SHA256:nope'], env);
    assert.equal(bad.code, 2, 'a value that is no fingerprint is a usage error');
  });

  await t.test('the right pin (as openssl prints it) is stored and every later command uses it, port-forward over wss included', async (t2) => {
    const r = await runPier(['login', '--api', server.apiUrl, '--token', server.token, '--fingerprint', hex, '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const saved = JSON.parse(await readFile(configFile, 'utf8')) as { apiUrl: string; fingerprint: string };
    assert.deepEqual([saved.apiUrl, saved.fingerprint], [server.apiUrl, fingerprint]);

    const file = join(home, 'pier.toml');
    await writeFile(file, manifest(image));
    const deployed = await runPier(['deploy', '-c', file], env, { timeoutMs: 90_000 });
    assert.equal(deployed.code, 0, deployed.stderr);
    const status = JSON.parse((await runPier(['status', '--app', 'tlsapp', '--json'], env)).stdout) as StatusView;
    t2.after(() => removeAppContainers(status.app.id));

    const port = await portForward(t2, env, 'tlsapp', 5432);
    const payload = randomBytes(256 * 1024);
    const echoed = await exchange('127.0.0.1', port, payload);
    assert.ok(echoed.equals(payload), 'bytes went through the wss:// tunnel and back');

    // The edge of `pier server` follows the feed over the same HTTPS, pinned.
    let edges: EdgeView[] = [];
    for (let i = 0; i < 30 && !edges.some((e) => e.live); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1000));
      edges = (JSON.parse((await runPier(['edges', '--json'], env)).stdout) as { edges: EdgeView[] }).edges;
    }
    assert.ok(edges.some((e) => e.live), `a live edge: ${JSON.stringify(edges)}`);

    // A pin for another certificate breaks every command the same way, before anything is sent.
    await writeFile(configFile, JSON.stringify({ ...saved, token: server.token, fingerprint: `SHA256:${'A'.repeat(43)}` }));
    const apps = await runPier(['apps', 'list'], env);
    assert.equal(apps.code, 1);
    assert.match(apps.stderr, /E_TLS_FINGERPRINT_MISMATCH/);
    const forward = await runPier(['port-forward', '--app', 'tlsapp', '0:5432'], env, { timeoutMs: 30_000 });
    assert.equal(forward.code, 1);
    assert.match(forward.stderr, /E_TLS_FINGERPRINT_MISMATCH/);
  });
});

/** `pier port-forward … 0:REMOTE` in the background; resolves with the local port it listens on. */
function portForward(t: TestContext, env: NodeJS.ProcessEnv, app: string, remote: number): Promise<number> {
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
        resolve(Number(m[1]));
      }
    });
    child.once('close', (code) => reject(new Error(`port-forward exited ${code}:\n${stderr}`)));
  });
}
