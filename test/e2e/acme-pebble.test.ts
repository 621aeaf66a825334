// certificates = "acme" end to end against a real ACME CA (Debian's Pebble, test/support/pebble.ts):
// `pier server` obtains a certificate for each of two host names of an app through tls-alpn-01
// answered by its own edge on the terminate port, serves them (chain to Pebble's root), renews
// them (Pebble issues for an hour, Pier renews 3592 s before expiry), and a connection open across
// the renewal keeps working while a new one gets the new certificate; a name Pebble's policy
// refuses is a cert.failed event with Pebble's reason and leaves no certificate behind. Each order
// waits for the edge's report that it serves the challenge's token; a name dropped from the
// manifest stops being served and its certificate is kept, unused (cert.unused, shown by `pier
// certs`), and reused with no new order when the name comes back (cert.reused).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { requirePeer } from '../support/peer-binary.js';
import { freePort, startPebble } from '../support/pebble.js';
import { runPier, startPierServer } from '../support/pier-process.js';

interface EventRow {
  type: string;
  message: string;
  data: Record<string, unknown>;
}

test('certificates = "acme": two names obtained from Pebble over tls-alpn-01, renewed with no dropped connection, a refused name reported', async (t) => {
  if (!(await requireDocker(t))) return;
  if (requirePeer(t, 'pebble') === null || requirePeer(t, 'pebble-challtestsrv') === null) return;
  const image = await ensureBusyboxImage();
  const port = await freePort();
  const pebble = await startPebble(t, { tlsPort: port, validitySeconds: 3600, blocklist: ['blocked.example.test'] });
  const server = await startPierServer(t, {
    PIER_ACME_DIRECTORY: pebble.directoryUrl,
    PIER_ACME_CA_FILE: pebble.caFile,
    PIER_ACME_EMAIL: 'ops@example.test',
    PIER_ACME_RENEW_BEFORE: '3592s',
    PIER_ACME_CHECK_EVERY: '1s',
    PIER_ACME_RETRY: '1h',
    PIER_ACME_KEEP_DROPPED: '1h',
  });
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
certificates = "acme"
hostnames = ["a.example.test", "b.example.test", "blocked.example.test"]
`,
  );
  const deployed = await runPier(['deploy', '-c', file], server.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  const s = JSON.parse((await runPier(['status', '--app', 'shop', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(s.app.id));

  const events = async (): Promise<EventRow[]> => {
    const res = await fetch(`${server.apiUrl}/v1/apps/shop/events?limit=500`, { headers: { authorization: `Bearer ${server.token}` } });
    return ((await res.json()) as { events: EventRow[] }).events;
  };
  const waitFor = async (what: string, check: (list: EventRow[]) => boolean): Promise<EventRow[]> => {
    for (let i = 0; i < 120; i++) {
      const list = await events();
      if (check(list)) return list;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`gave up waiting for ${what}: ${JSON.stringify((await events()).map((e) => e.message))}\n${server.stderr().slice(-3000)}`);
  };
  const of = (list: EventRow[], type: string, name: string) => list.filter((e) => e.type === type && e.data.name === name);

  const issued = await waitFor('cert.issued for both names and cert.failed for the blocked one', (l) =>
    of(l, 'cert.issued', 'a.example.test').length > 0 && of(l, 'cert.issued', 'b.example.test').length > 0 && of(l, 'cert.failed', 'blocked.example.test').length > 0,
  );
  // Pebble's reason is in the event.
  assert.match(String(of(issued, 'cert.failed', 'blocked.example.test')[0]!.data.error), /blocked|policy|forbid/i);
  // Each order waited for the edge to report the snapshot carrying its challenge, not a guess.
  assert.match(server.stdout() + server.stderr(), /ACME challenge confirmed by the edges/);
  assert.doesNotMatch(server.stdout() + server.stderr(), /did not confirm the ACME challenge|no edge is live to answer|report no ACME challenge tokens/);

  const root = await pebble.root();
  const open = (name: string): Promise<tls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername: name, ca: root }, () => resolve(c));
      c.once('error', reject);
    });
  const line = (c: tls.TLSSocket, text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      let got = '';
      const onData = (b: Buffer) => {
        got += b.toString();
        if (got.includes(`${text}\n`)) {
          c.off('data', onData);
          resolve(got);
        }
      };
      c.on('data', onData);
      c.once('error', reject);
      c.write(`${text}\n`);
    });

  // Served, verified against Pebble's root for this run, issued by Pebble.
  const kept = await open('a.example.test');
  assert.ok(kept.authorized);
  const first = kept.getPeerCertificate();
  assert.match(String(first.issuer.CN), /Pebble/);
  assert.equal(first.subjectaltname, 'DNS:a.example.test');
  assert.match(await line(kept, 'before'), /served-by-shop[^]*before\n/);
  const b = await open('b.example.test');
  assert.equal(b.getPeerCertificate().subjectaltname, 'DNS:b.example.test');
  b.destroy();

  // Renewed: the new certificate is served to new handshakes, the open connection carries on.
  await waitFor('cert.renewed for a.example.test', (l) => of(l, 'cert.renewed', 'a.example.test').length > 0);
  let renewed = '';
  for (let i = 0; i < 40 && (renewed === '' || renewed === first.fingerprint256); i++) {
    const c = await open('a.example.test');
    renewed = c.getPeerCertificate().fingerprint256;
    c.destroy();
    if (renewed === first.fingerprint256) await new Promise((r) => setTimeout(r, 250));
  }
  assert.notEqual(renewed, first.fingerprint256, 'a new handshake gets the renewed certificate');
  assert.match(await line(kept, 'after'), /after\n/, 'the connection opened before the renewal still works');
  kept.destroy();

  // Nothing half-applied for the refused name: no certificate names it.
  const listed = JSON.parse((await runPier(['certs', 'list', '--app', 'shop', '--json'], server.env)).stdout) as { certificates: { names: string[]; source: string }[] };
  assert.ok(listed.certificates.every((c) => c.source === 'acme' && !c.names.includes('blocked.example.test')));
  assert.ok(listed.certificates.some((c) => c.names.includes('a.example.test')));

  // b.example.test leaves the manifest: new handshakes for it no longer get its certificate, which
  // is kept unused (cert.unused), and `pier certs` says until when; a's is untouched.
  const manifest = await readFile(file, 'utf8');
  await writeFile(file, manifest.replace('"b.example.test", ', ''));
  const redeployed = await runPier(['deploy', '-c', file], server.env);
  assert.equal(redeployed.code, 0, redeployed.stderr);
  const dropped = await waitFor('cert.unused for b.example.test', (l) => l.some((e) => e.type === 'cert.unused' && (e.data.names as string[]).includes('b.example.test')));
  const keptId = String(dropped.find((e) => e.type === 'cert.unused')!.data.certificate);
  assert.equal(dropped.filter((e) => e.type === 'cert.removed').length, 0);
  const notB = await open('b.example.test').catch((err: Error) => err);
  if (!(notB instanceof Error)) {
    assert.notEqual(notB.getPeerCertificate().subjectaltname, 'DNS:b.example.test', 'the dropped name is not served');
    notB.destroy();
  }
  interface CertRow {
    id: string;
    names: string[];
    unusedSince: string | null;
    removeAfter: string | null;
  }
  const certs = async () => (JSON.parse((await runPier(['certs', 'list', '--app', 'shop', '--json'], server.env)).stdout) as { certificates: CertRow[] }).certificates;
  const keptRow = (await certs()).find((c) => c.id === keptId);
  assert.ok(keptRow?.unusedSince && keptRow.removeAfter, `kept and marked unused: ${JSON.stringify(keptRow)}`);
  assert.ok(Date.parse(keptRow.removeAfter!) - Date.parse(keptRow.unusedSince!) === 3_600_000);
  assert.ok((await certs()).filter((c) => c.names.includes('a.example.test')).every((c) => c.unusedSince === null));
  const table = await runPier(['certs', 'list', '--app', 'shop'], server.env);
  assert.match(table.stdout, new RegExp(`${keptId}.*unused since .* removed after ${keptRow.removeAfter!.replace(/[.]/g, '[.]')}`));
  assert.match((await runPier(['certs', 'describe', keptId], server.env)).stdout, /State:\s+unused since/);

  // It comes back (a rollback): the kept certificate is in use again and no new order is made.
  const issuedB = () => of(issuedEvents, 'cert.issued', 'b.example.test').length;
  let issuedEvents = await events();
  const issuedBefore = issuedB();
  await writeFile(file, manifest);
  const back = await runPier(['deploy', '-c', file], server.env);
  assert.equal(back.code, 0, back.stderr);
  issuedEvents = await waitFor('cert.reused for b.example.test', (l) => l.some((e) => e.type === 'cert.reused' && e.data.certificate === keptId));
  assert.equal(issuedB(), issuedBefore, 'no new certificate was ordered for the name that came back');
  assert.ok((await certs()).every((c) => c.unusedSince === null));
  const servedB = await open('b.example.test');
  assert.equal(servedB.getPeerCertificate().subjectaltname, 'DNS:b.example.test');
  servedB.destroy();
});
