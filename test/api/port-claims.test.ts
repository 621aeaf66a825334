// Ports belong to one app, enforced by the database: two deploys racing for one port through the
// real HTTP API end with exactly one winner and a 409 E_PORT_IN_USE naming it, leaving nothing of
// the loser behind (on today's main both won on PostgreSQL, and the edge refused every snapshot
// after that). A plain tcp endpoint never shares its port; TLS passthrough endpoints share one by
// distinct server names, with one default; the refusal names the holder (to those who may see it)
// and the server name. A reverted rollout restores what it can and says what it could not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { apps, endpoints, events, portClaims, portModes, releases } from '../../db/schema/index.js';
import { parseManifest } from '../../api/manifest.js';
import type { DeployView, ErrorBody, StatusView } from '../../api/views.js';
import { captureLog } from '../support/log-capture.js';
import { createControlPlane, echoManifest, IMAGE, type ControlPlane } from '../support/memory-control-plane.js';
import { memoryManifest, startMemoryServer } from '../support/memory-server.js';
import { createOrg } from '../support/test-api.js';
import { createTestDbUrl } from '../support/test-db.js';
import type { Db } from '../../db/database.js';

function tlsManifest(app: string, port: number, options: { sni?: string[]; sniDefault?: boolean } = {}): string {
  return [
    `app = "${app}"`,
    `image = "${IMAGE}"`,
    '[processes.web]',
    'cmd = ["nc", "-ll", "-p", "8443", "-e", "cat"]',
    'count = 1',
    '[[endpoints]]',
    'process = "web"',
    `port = ${port}`,
    'target = 8443',
    'tls = "passthrough"',
    ...(options.sni ? [`sni = ${JSON.stringify(options.sni)}`] : []),
    ...(options.sniDefault ? ['sni_default = true'] : []),
  ].join('\n');
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; hint: string; details: Record<string, unknown> }> {
  const err = await p.then(
    () => assert.fail('the deploy was accepted'),
    (e: unknown) => e as { code: string; message: string; hint: string; details: Record<string, unknown> },
  );
  assert.equal(err.code, 'E_PORT_IN_USE', String(err));
  return err;
}

async function claims(db: Db) {
  const rows = await db.select({ port: portClaims.port, name: portClaims.name, mode: portClaims.mode, app: apps.name }).from(portClaims).innerJoin(apps, eq(apps.id, portClaims.appId));
  return rows.map((r) => `${r.app}:${r.port}:${r.mode}:${r.name}`).sort();
}

async function modes(db: Db) {
  return (await db.select().from(portModes)).map((m) => `${m.address}:${m.port}:${m.mode}`).sort();
}

test('two deploys racing for one port through the API: exactly one wins, the other is E_PORT_IN_USE naming it, and leaves nothing', async (t) => {
  const databaseUrl = await createTestDbUrl(t);
  // Both deploys are held just before their writes until the other arrives (on PGlite, where
  // transactions take turns, the first goes on alone after a moment): on today's main both passed
  // the port check there and both committed.
  let arrived = 0;
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const s = await startMemoryServer(
    {
      databaseUrl,
      log: captureLog('warn').log,
      checkpoint: async (name) => {
        if (name !== 'deploy.checked') return;
        if (++arrived >= 2) open();
        await Promise.race([gate, new Promise((r) => setTimeout(r, 2_000))]);
      },
    },
    t,
  );
  const port = 21500;
  const [a, b] = await Promise.all(['racer-a', 'racer-b'].map((app) => s.request('/v1/deploys', { body: { manifest: memoryManifest(app, port, 1) } })));
  const answers = [
    { app: 'racer-a', status: a?.status, body: (await a?.json()) as DeployView & ErrorBody },
    { app: 'racer-b', status: b?.status, body: (await b?.json()) as DeployView & ErrorBody },
  ];
  const won = answers.filter((x) => x.status === 201);
  const lost = answers.filter((x) => x.status === 409);
  assert.equal(won.length, 1, JSON.stringify(answers));
  assert.equal(lost.length, 1, JSON.stringify(answers));
  const winner = won[0]?.app as string;
  const loser = lost[0]?.app as string;
  assert.equal(lost[0]?.body.error.code, 'E_PORT_IN_USE');
  assert.match(lost[0]?.body.error.message ?? '', new RegExp(`port ${port} is held by app "${winner}"`));
  assert.match(lost[0]?.body.error.hint ?? '', /choose another port/);
  assert.deepEqual(lost[0]?.body.error.details, { port, app: winner });

  // Nothing of the loser: no app, no release, no endpoint, no claim; one mode row for the port.
  assert.equal((await s.request(`/v1/apps/${loser}`)).status, 404);
  const db = s.server.internals.db;
  assert.deepEqual((await db.select().from(apps)).map((x) => x.name), [winner]);
  assert.equal((await db.select().from(releases)).length, 1);
  assert.deepEqual((await db.select().from(endpoints)).map((e) => e.port), [port]);
  assert.deepEqual(await claims(db), [`${winner}:${port}:tcp:`]);
  assert.deepEqual(await modes(db), [`*:${port}:tcp`]);
  const snapshot = await s.server.internals.edgeFeed.rebuild();
  assert.deepEqual(snapshot.endpoints.map((e) => e.name), [`${winner}/${port}`]);

  // And the port is the winner's for good: a later deploy of the loser is refused the same way.
  const again = await s.request('/v1/deploys', { body: { manifest: memoryManifest(loser, port, 1) } });
  assert.equal(again.status, 409);
  const status = (await (await s.request(`/v1/apps/${winner}`)).json()) as StatusView;
  assert.deepEqual(status.endpoints.map((e) => e.port), [port]);
});

test('tcp and tls passthrough never mix on a port, in either order', async (t) => {
  const cp = await createControlPlane(t);
  await cp.deploy(tlsManifest('secure', 8443, { sni: ['a.example.com'] }));
  const plain = await refusal(cp.deploy(echoManifest('plain', { port: 8443 })));
  assert.match(plain.message, /port 8443 is shared by TLS passthrough endpoints \(app "secure" holds it\), and a plain tcp endpoint cannot join them/);

  await cp.deploy(echoManifest('tcp', { port: 9443 }));
  const tls = await refusal(cp.deploy(tlsManifest('secure2', 9443, { sni: ['b.example.com'] })));
  assert.match(tls.message, /port 9443 is held by app "tcp" for a plain tcp endpoint/);
  assert.equal(tls.details.app, 'tcp');
  assert.deepEqual(await claims(cp.db), ['secure:8443:tls:a.example.com', 'tcp:9443:tcp:']);
  assert.deepEqual((await cp.db.select({ name: apps.name }).from(apps)).map((a) => a.name).sort(), ['secure', 'tcp']);
});

test('TLS passthrough endpoints share a port by distinct names and one default; a clash names the server name and its holder', async (t) => {
  const cp = await createControlPlane(t);
  await cp.deploy(tlsManifest('one', 443, { sni: ['one.example.com', 'ONE.example.com'] }));
  await cp.deploy(tlsManifest('two', 443, { sni: ['two.example.com'], sniDefault: true }));
  await cp.deploy(tlsManifest('three', 443, { sni: ['*.example.com'] }));
  assert.deepEqual(await claims(cp.db), ['one:443:tls:one.example.com', 'three:443:tls:*.example.com', 'two:443:tls:*', 'two:443:tls:two.example.com']);
  const snapshot = await cp.edgeFeed.rebuild();
  assert.equal(snapshot.endpoints.length, 3);

  const name = await refusal(cp.deploy(tlsManifest('four', 443, { sni: ['new.example.com', 'two.example.com'] })));
  assert.match(name.message, /the server name "two\.example\.com" on port 443 is already served by app "two"/);
  assert.deepEqual(name.details, { port: 443, app: 'two', sni: 'two.example.com', sniDefault: false });
  const fallback = await refusal(cp.deploy(tlsManifest('five', 443, { sni: ['five.example.com'], sniDefault: true })));
  assert.match(fallback.message, /port 443 already has an SNI default: app "two"/);

  // An app may move its own port between modes; another org's holder is not named.
  await cp.deploy(tlsManifest('one', 443, { sni: ['one.example.com', 'uno.example.com'] }));
  await cp.deploy(echoManifest('mover', { port: 7000 }));
  await cp.deploy(tlsManifest('mover', 7000, { sni: ['m.example.com'] }));
  assert.deepEqual((await claims(cp.db)).filter((c) => c.startsWith('mover') || c.startsWith('one')), ['mover:7000:tls:m.example.com', 'one:443:tls:one.example.com', 'one:443:tls:uno.example.com']);
  const stranger = await createOrg(cp.db, 'stranger');
  const hidden = await refusal(cp.deploys.deploy({ tokenId: 'tok_x', orgId: stranger, scope: 'admin', appId: null }, parseManifest(echoManifest('spy', { port: 7000 }))));
  assert.match(hidden.message, /an app of another org holds it/);
  assert.doesNotMatch(hidden.message + hidden.hint, /mover/);
  assert.equal(hidden.details.app, undefined);
});

test('a port freed by a removed endpoint is free at once, whatever its old mode; unused mode rows are tidied away', async (t) => {
  const cp = await createControlPlane(t);
  await cp.deploy(tlsManifest('first', 6000, { sni: ['x.example.com'] }));
  await cp.deploy(echoManifest('first', { port: 6001 }));
  assert.deepEqual(await modes(cp.db), ['*:6001:tcp']);
  await cp.deploy(echoManifest('second', { port: 6000 }));
  // A mode row left behind (as an app deleted by its endpoint rows leaves one) does not block.
  await cp.db.insert(portModes).values({ address: '*', port: 6100, mode: 'tls' });
  await cp.deploy(echoManifest('third', { port: 6100 }));
  assert.deepEqual(await modes(cp.db), ['*:6000:tcp', '*:6001:tcp', '*:6100:tcp']);
  await cp.db.delete(endpoints).where(eq(endpoints.port, 6100));
  assert.deepEqual(await claims(cp.db), ['first:6001:tcp:', 'second:6000:tcp:'], 'claims go with their endpoint rows');
});

test('a rollback is refused a port another app took since, and a failed rollout restores every endpoint but a taken one, saying so', async (t) => {
  const cp: ControlPlane = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('roll', { count: 1, port: 5100 }));
  await cp.converge(v1.app.id, async () => (await cp.pass(v1.app.id))?.changed === false, 'v1 runs');
  // v2 moves to 5101; meanwhile another app takes 5100.
  await cp.deploy(echoManifest('roll', { count: 1, port: 5101, cmd: ['sh', '-c', 'exit 3'] }));
  await cp.deploy(echoManifest('taker', { count: 1, port: 5100 }));
  await cp.converge(v1.app.id, async () => {
    const [dep] = await cp.db.select().from(events).where(eq(events.type, 'deploy.failed'));
    return dep !== undefined;
  }, 'the rollout of v2 fails');
  const notRestored = (await cp.db.select().from(events).where(eq(events.type, 'endpoint.not_restored')))[0];
  assert.match(notRestored?.message ?? '', /endpoint :5100 of v1 was not restored: port 5100 is held by app "taker"/);
  assert.deepEqual((await cp.db.select().from(endpoints).where(eq(endpoints.appId, v1.app.id))).map((e) => e.port), []);
  assert.deepEqual(await claims(cp.db), ['taker:5100:tcp:']);
  const back = await refusal(cp.deploys.rollback(cp.auth, 'roll', 1));
  assert.match(back.message, /port 5100 is held by app "taker"/);
  assert.equal((await cp.db.select().from(releases).where(eq(releases.appId, v1.app.id))).length, 2, 'the refused rollback wrote no release');
});
