// Certificates as resources: `POST /v1/apps/:app/certs` checks the upload whole (coded errors,
// nothing stored), stores the key sealed (not as PEM), lists and describes without the key; the
// edge feed carries the certificate, key opened, to a tls = "terminate" endpoint in a snapshot
// the edge accepts; removing the last one such an endpoint serves is refused (what the edge does not
// serve, kept unused or expired, does not count).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { certificates, endpoints } from '../../../db/schema/index.js';
import { newId } from '../../../api/ids.js';
import { parseEdgeConfig } from '../../../proxy/validate-edge-config.js';
import { createApp, createOrg, createTestApi, createToken } from '../../support/test-api.js';
import { makeTestCa } from '../../support/tls-certs.js';

test('pier certs: checked upload, sealed key, list, describe, feed to the edge, guarded removal', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const web = await createApp(api.db, org, 'web');
  const token = await createToken(api.db, org, { scope: 'deploy' });
  const ca = makeTestCa(t);
  const good = ca.issue({ cn: 'shop.example.com', names: ['shop.example.com', 'www.shop.example.com'] });
  const add = async (cert: string, key: string) => {
    const res = await api.request('/v1/apps/web/certs', { token, body: { cert: cert, key } });
    return { status: res.status, body: (await res.json()) as { certificate?: { id: string; names: string[] }; error?: { code: string; message: string; hint?: string } } };
  };

  // Bad input: coded, and nothing stored.
  const expired = ca.issue({ cn: 'old.example.com', names: ['old.example.com'], days: -1 });
  const other = ca.issue({ cn: 'x.example.com', names: ['x.example.com'] });
  const stranger = makeTestCa(t, 'Another CA');
  const cases: [string, string, string][] = [
    [expired.cert + ca.cert, expired.key, 'E_CERT_EXPIRED'],
    [good.cert + ca.cert, other.key, 'E_CERT_KEY_MISMATCH'],
    [good.cert + stranger.cert, good.key, 'E_CERT_CHAIN'],
    [good.cert, good.key, 'E_CERT_CHAIN'],
    ['not a pem', good.key, 'E_CERT_INVALID'],
    [good.cert + ca.cert, 'not a key', 'E_CERT_KEY_INVALID'],
  ];
  for (const [cert, key, code] of cases) {
    const r = await add(cert, key);
    assert.equal(r.status, 422, `${code}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, code);
    assert.ok(r.body.error?.hint);
  }
  assert.equal((await api.db.select().from(certificates)).length, 0);

  const added = await add(good.cert + ca.cert, good.key);
  assert.equal(added.status, 201, JSON.stringify(added.body));
  const id = added.body.certificate!.id;
  assert.deepEqual(added.body.certificate!.names, ['shop.example.com', 'www.shop.example.com']);
  const [row] = await api.db.select().from(certificates).where(eq(certificates.id, id));
  assert.ok(!row!.keyEncrypted.includes('PRIVATE KEY'));
  assert.match(row!.keyEncrypted, /^v1:/);

  const list = (await (await api.request('/v1/apps/web/certs', { token })).json()) as { certificates: { id: string; daysLeft: number }[] };
  assert.deepEqual(list.certificates.map((c) => c.id), [id]);
  const one = (await (await api.request(`/v1/certs/${id}`, { token })).json()) as { certificate: Record<string, unknown> };
  assert.match(String(one.certificate.chain), /BEGIN CERTIFICATE/);
  assert.ok(!JSON.stringify(one).includes('PRIVATE KEY'));
  assert.equal((await api.request('/v1/certs/cert_nope', { token })).status, 404);

  // A tls = "terminate" endpoint gets it through the feed, key opened; the edge accepts the snapshot.
  await api.db.insert(endpoints).values({ id: newId('ep'), appId: web, process: 'web', port: 443, targetPort: 8080, tls: 'terminate', proxyProtocol: 'v2', tlsOptions: { alpn: ['http/1.1'] } });
  const snapshot = await api.edgeFeed.rebuild();
  const ep = snapshot.endpoints.find((e) => e.name === 'web/443')!;
  assert.deepEqual(ep.terminate, { certificates: [id], alpn: ['http/1.1'] });
  assert.equal(snapshot.certificates?.[0]?.id, id);
  assert.match(snapshot.certificates![0]!.key, /BEGIN PRIVATE KEY/);
  assert.equal(parseEdgeConfig(snapshot).ok, true);

  const removed = await api.request(`/v1/certs/${id}`, { token, method: 'DELETE' });
  assert.equal(removed.status, 409);
  assert.equal(((await removed.json()) as { error: { code: string } }).error.code, 'E_CERT_IN_USE');
  await api.db.delete(endpoints).where(eq(endpoints.appId, web));
  assert.equal((await api.request(`/v1/certs/${id}`, { token, method: 'DELETE' })).status, 200);
});

test('pier certs remove: a certificate the edge does not serve (kept unused, or expired) neither covers a tls = "terminate" endpoint nor is refused', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const web = await createApp(api.db, org, 'web');
  const token = await createToken(api.db, org, { scope: 'deploy' });
  const ca = makeTestCa(t);
  const add = async (name: string) => {
    const leaf = ca.issue({ cn: name, names: [name] });
    const res = await api.request('/v1/apps/web/certs', { token, body: { cert: leaf.cert + ca.cert, key: leaf.key } });
    assert.equal(res.status, 201);
    return ((await res.json()) as { certificate: { id: string } }).certificate.id;
  };
  const remove = async (id: string) => {
    const res = await api.request(`/v1/certs/${id}`, { token, method: 'DELETE' });
    return { status: res.status, code: res.status === 200 ? null : ((await res.json()) as { error: { code: string } }).error.code };
  };
  await api.db.insert(endpoints).values({ id: newId('ep'), appId: web, process: 'web', port: 443, targetPort: 8080, tls: 'terminate', tlsOptions: { acmeNames: ['shop.example.com'] } });
  // As the keeper leaves them: the certificate of the listed name, and one of a name the manifest
  // dropped, kept unused (PIER_ACME_KEEP_DROPPED); and an uploaded one that has expired since.
  const inUse = await add('shop.example.com');
  const kept = await add('old.example.com');
  const expired = await add('gone.example.com');
  await api.db.update(certificates).set({ source: 'acme' }).where(eq(certificates.appId, web));
  await api.db.update(certificates).set({ unusedSince: new Date(), removeAfter: new Date(Date.now() + 3_600_000) }).where(eq(certificates.id, kept));
  await api.db.update(certificates).set({ source: 'upload', notAfter: new Date(Date.now() - 60_000) }).where(eq(certificates.id, expired));
  const served = async () => ((await api.edgeFeed.rebuild()).certificates ?? []).map((c) => c.id).sort();
  assert.deepEqual(await served(), [inUse], 'the edge serves only the certificate of the listed name');

  assert.deepEqual(await remove(inUse), { status: 409, code: 'E_CERT_IN_USE' }, 'the kept and the expired certificates do not cover the endpoint');
  assert.equal((await api.db.select().from(certificates).where(eq(certificates.id, inUse))).length, 1);
  // Removing what serves nothing changes nothing the edge serves: allowed, even as the last one left besides.
  assert.deepEqual(await remove(kept), { status: 200, code: null });
  assert.deepEqual(await remove(expired), { status: 200, code: null });
  assert.deepEqual(await remove(inUse), { status: 409, code: 'E_CERT_IN_USE' });
  // A replacement the edge serves: then it goes.
  const replacement = await add('www.example.com');
  assert.deepEqual(await served(), [replacement, inUse].sort());
  assert.deepEqual(await remove(inUse), { status: 200, code: null });
  assert.deepEqual(await served(), [replacement]);
});

test('pier certs remove: two removals at once of the only two served certificates leave one (one 200, one E_CERT_IN_USE)', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const web = await createApp(api.db, org, 'web');
  const token = await createToken(api.db, org, { scope: 'deploy' });
  const ca = makeTestCa(t);
  await api.db.insert(endpoints).values({ id: newId('ep'), appId: web, process: 'web', port: 443, targetPort: 8080, tls: 'terminate' });
  for (let round = 0; round < 5; round++) {
    const ids: string[] = [];
    for (const name of [`a${round}.example.com`, `b${round}.example.com`]) {
      const leaf = ca.issue({ cn: name, names: [name] });
      const res = await api.request('/v1/apps/web/certs', { token, body: { cert: leaf.cert + ca.cert, key: leaf.key } });
      assert.equal(res.status, 201);
      ids.push(((await res.json()) as { certificate: { id: string } }).certificate.id);
    }
    const answers = await Promise.all(
      ids.map(async (id) => {
        const res = await api.request(`/v1/certs/${id}`, { token, method: 'DELETE' });
        return res.status === 200 ? '200' : ((await res.json()) as { error: { code: string } }).error.code;
      }),
    );
    assert.deepEqual(answers.sort(), ['200', 'E_CERT_IN_USE'], `round ${round}`);
    const left = await api.db.select().from(certificates).where(eq(certificates.appId, web));
    assert.equal(left.length, 1, `round ${round}: one certificate still serves port 443`);
    await api.db.delete(certificates).where(eq(certificates.appId, web));
  }
});
