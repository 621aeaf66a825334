// A real ACME CA for a test: Debian's `pebble` on free loopback ports with its own config, its
// HTTPS certificate from a test CA (the client trusts that CA through a file, as a server would
// with PIER_ACME_CA_FILE), validating tls-alpn-01 on `tlsPort` at the address the names resolve
// to: `pebble-challtestsrv` answers its DNS queries with 127.0.0.1 for every name. Real
// validation (never PEBBLE_VA_ALWAYS_VALID); PEBBLE_VA_NOSLEEP only skips Pebble's random delays.
// Both processes are ended by PID when the test ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { makeTestCa } from './tls-certs.js';

export interface Pebble {
  directoryUrl: string;
  /** PEM file of the CA that signed Pebble's HTTPS certificate. */
  caFile: string;
  /** The root Pebble issues under this run (it makes a new one each start). */
  root(): Promise<string>;
}

export interface PebbleOptions {
  /** Where the validator connects for tls-alpn-01 (the edge's terminate port). */
  tlsPort: number;
  /** Lifetime of issued certificates, in seconds. */
  validitySeconds: number;
  /** Names Pebble's policy refuses. */
  blocklist?: string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startPebble(t: TestContext, options: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-pebble-'));
  const ca = makeTestCa(t, 'Pebble HTTPS Test CA');
  const leaf = ca.issue({ cn: 'pebble', names: ['localhost'], ips: ['127.0.0.1'] });
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  await writeFile(join(dir, 'cert.pem'), leaf.cert);
  await writeFile(join(dir, 'key.pem'), leaf.key);
  const [listen, management, httpPort, dns, dnsManagement] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  await writeFile(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        domainBlocklist: options.blocklist ?? [],
        certificateValidityPeriod: options.validitySeconds,
      },
    }),
  );
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });
  const logs: string[] = [];
  const run = (bin: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess => {
    const c = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (b: Buffer) => logs.push(b.toString()));
    c.stderr!.on('data', (b: Buffer) => logs.push(b.toString()));
    children.push(c);
    return c;
  };
  run('pebble-challtestsrv', ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsManagement}`]);
  run('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns}`], {
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
    // Every order is validated again through the edge, renewals included.
    PEBBLE_AUTHZREUSE: '0',
  });
  const directoryUrl = `https://127.0.0.1:${listen}/dir`;
  const get = (url: string): Promise<string> =>
    new Promise((resolve, reject) => {
      https
        .get(url, { ca: ca.cert }, (res) => {
          let body = '';
          res.on('data', (b: Buffer) => (body += b.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
        })
        .on('error', reject);
    });
  for (let i = 0; ; i++) {
    try {
      await get(directoryUrl);
      break;
    } catch (err) {
      if (i >= 100) throw new Error(`pebble did not answer in 20 s: ${(err as Error).message}\n${logs.join('').slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { directoryUrl, caFile: join(dir, 'ca.pem'), root: () => get(`https://127.0.0.1:${management}/roots/0`) };
}
