// TLS passthrough end to end: two apps serve one port, each for its own server names, and the
// edge routes each connection by the name in its ClientHello without terminating TLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer } from '../support/pier-process.js';

/** The first bytes a real TLS client sends for `servername`: its ClientHello. */
async function clientHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const client = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const bytes = await hello;
  client.destroy();
  server.close();
  return bytes;
}

/** Sends the hello through the edge and reads the first line the backend answers with. */
async function firstLine(port: number, hello: Buffer): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const line = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.write(hello));
      let got = '';
      s.on('data', (b: Buffer) => {
        got += b.toString('latin1');
        if (got.includes('\n')) {
          resolve(got.split('\n')[0] ?? '');
          s.destroy();
        }
      });
      s.on('error', () => resolve(''));
      s.on('close', () => resolve(got.split('\n')[0] ?? ''));
    });
    if (line) return line;
    await new Promise((r) => setTimeout(r, 250));
  }
  return '';
}

const manifest = (app: string, image: string, port: number, names: string[]) => `
app = "${app}"
image = "${image}"
[processes.tls]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8443 -e sh -c 'echo served-by-${app}; cat' & wait"]
count = 1
[[endpoints]]
process = "tls"
port = ${port}
target = 8443
tls = "passthrough"
sni = ${JSON.stringify(names)}
`;

test('two apps share a port by TLS server name, and a third claiming a taken name is refused', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = 9100 + Math.floor(Math.random() * 800);
  for (const [app, names] of [['alpha', ['a.example.test']], ['beta', ['b.example.test', '*.beta.example.test']]] as const) {
    const file = join(server.dir, `${app}.toml`);
    await writeFile(file, manifest(app, image, port, [...names]));
    const r = await runPier(['deploy', '-c', file], server.env);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse((await runPier(['status', '--app', app, '--json'], server.env)).stdout) as StatusView;
    t.after(() => removeAppContainers(s.app.id));
  }
  assert.equal(await firstLine(port, await clientHello('a.example.test')), 'served-by-alpha');
  assert.equal(await firstLine(port, await clientHello('b.example.test')), 'served-by-beta');
  assert.equal(await firstLine(port, await clientHello('x.beta.example.test')), 'served-by-beta');
  assert.equal(await firstLine(port, await clientHello('nobody.example.test')), '', 'no match and no default: closed');

  const file = join(server.dir, 'gamma.toml');
  await writeFile(file, manifest('gamma', image, port, ['a.example.test']));
  const refused = await runPier(['deploy', '-c', file], server.env);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /E_PORT_IN_USE/);
  assert.match(refused.stderr, /a\.example\.test/);
});
