// TLS termination end to end through `pier server`: an app deployed with tls = "terminate" is
// served once `pier certs add` gives it a certificate; `openssl s_client -servername` talks
// plaintext to the container; port 80 style http_redirect answers 308; a passthrough endpoint of
// another app on the same port is refused with a code and nothing applied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { requirePeer } from '../support/peer-binary.js';
import { runPier, startPierServer } from '../support/pier-process.js';
import { makeTestCa } from '../support/tls-certs.js';

async function greeting(port: number, ca: string): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const line = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'shop.example.test', ca }, () => undefined);
      let got = '';
      s.on('data', (b: Buffer) => {
        got += b.toString();
        if (got.includes('\n')) {
          resolve(got.split('\n')[0]!);
          s.destroy();
        }
      });
      s.on('error', () => resolve(''));
      s.on('close', () => resolve(''));
    });
    if (line) return line;
    await new Promise((r) => setTimeout(r, 250));
  }
  return '';
}

test('tls = "terminate": pier certs add, openssl s_client talks plaintext to the app, http_redirect, a passthrough clash refused', async (t) => {
  if (!(await requireDocker(t))) return;
  const openssl = requirePeer(t, 'openssl');
  if (openssl === null) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = 9100 + Math.floor(Math.random() * 800);
  const redirectPort = port + 1;
  const file = join(server.dir, 'shop.toml');
  await writeFile(
    file,
    `app = "shop"
image = "${image}"
[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e sh -c 'echo served-by-shop; cat' & wait"]
count = 1
[[endpoints]]
process = "web"
port = ${port}
target = 8080
tls = "terminate"
[[endpoints]]
process = "web"
port = ${redirectPort}
target = 8080
http_redirect = true
`,
  );
  // No certificate yet: refused with the command to run, nothing applied.
  const early = await runPier(['deploy', '-c', file], server.env);
  assert.equal(early.code, 1, early.stderr);
  assert.match(early.stderr, /E_CERT_MISSING[^]*pier certs add --app shop/);

  const ca = makeTestCa(t);
  const leaf = ca.issue({ cn: 'shop.example.test', names: ['shop.example.test'] });
  await writeFile(join(server.dir, 'fullchain.pem'), leaf.cert + ca.cert);
  await writeFile(join(server.dir, 'key.pem'), leaf.key);
  await writeFile(join(server.dir, 'other-key.pem'), ca.issue({ cn: 'x', names: ['x.example.test'] }).key);
  const mismatch = await runPier(['certs', 'add', '--app', 'shop', '--cert', join(server.dir, 'fullchain.pem'), '--key', join(server.dir, 'other-key.pem')], server.env);
  assert.equal(mismatch.code, 1, mismatch.stderr);
  assert.match(mismatch.stderr, /E_CERT_KEY_MISMATCH/);
  const added = await runPier(['certs', 'add', '--app', 'shop', '--cert', join(server.dir, 'fullchain.pem'), '--key', join(server.dir, 'key.pem'), '--json'], server.env);
  assert.equal(added.code, 0, added.stderr);
  assert.deepEqual((JSON.parse(added.stdout) as { certificate: { names: string[] } }).certificate.names, ['shop.example.test']);
  const deployed = await runPier(['deploy', '-c', file], server.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  const s = JSON.parse((await runPier(['status', '--app', 'shop', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(s.app.id));

  assert.equal(await greeting(port, ca.cert), 'served-by-shop');
  const child = spawn(openssl, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'shop.example.test', '-quiet'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stdin.write('plaintext to the app\n');
  for (let i = 0; i < 100 && !out.includes('plaintext to the app'); i++) await new Promise((r) => setTimeout(r, 100));
  child.kill();
  assert.match(out, /served-by-shop\nplaintext to the app/);

  const answer = await new Promise<string>((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port: redirectPort }, () => c.write('GET /cart HTTP/1.1\r\nHost: shop.example.test\r\n\r\n'));
    let got = '';
    c.on('data', (b) => (got += b.toString()));
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
  });
  assert.match(answer, /^HTTP\/1\.1 308 [^]*Location: https:\/\/shop\.example\.test\/cart\r\n/);

  const clash = join(server.dir, 'pass.toml');
  await writeFile(clash, `app = "pass"\nimage = "${image}"\n[processes.tls]\ncmd = ["sleep", "3600"]\ncount = 1\n[[endpoints]]\nprocess = "tls"\nport = ${port}\ntarget = 8443\ntls = "passthrough"\nsni = ["shop.example.test"]\n`);
  const refused = await runPier(['deploy', '-c', clash], server.env);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /E_PORT_IN_USE/);
  assert.equal(await greeting(port, ca.cert), 'served-by-shop', 'still served after the refused deploy');
});
