// IPv6 first (issue 16): with an IPv6 pool on the server, every app gets its own IPv6 on its first
// deploy, and its endpoints bind it beside the shared IPv4 (or its dedicated IPv4); deploying the
// same manifest again changes nothing; an IPv6-only endpoint binds no IPv4; a full pool refuses
// the deploy whole. On the control plane with the in-memory runtime and the real database.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { events, ipAddresses } from '../../db/schema/index.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

test('each app gets its own IPv6 on its first deploy and its endpoints bind it beside the shared IPv4', async (t) => {
  const cp = await createControlPlane(t, { ipPools: ['fd00:77::/126', '127.77.9.0/30'] });
  const one = await cp.deploy(echoManifest('one', { port: 9000, count: 0 }));
  const two = await cp.deploy(echoManifest('two', { port: 9001, count: 0, extra: '' }).replace('target = 8080', 'target = 8080\nipv4 = "none"'));
  const rows = await cp.db.select().from(ipAddresses);
  assert.deepEqual(rows.map((r) => [r.address, r.appId]).sort(), [['fd00:77::1', one.app.id], ['fd00:77::2', two.app.id]]);
  const allocated = await cp.db.select().from(events).where(eq(events.type, 'ip.allocated'));
  assert.deepEqual(allocated.map((e) => e.reason), ['first-deploy', 'first-deploy']);

  const snapshot = await cp.edgeFeed.rebuild();
  const binds = Object.fromEntries(snapshot.endpoints.map((e) => [e.name, e.bind.map((b) => b.address)]));
  assert.deepEqual(binds, { 'one/9000': ['127.0.0.1', 'fd00:77::1'], 'two/9001': ['fd00:77::2'] });

  // The same manifest again: nothing new (the address is part of the release from the start).
  const again = await cp.deploy(echoManifest('one', { port: 9000, count: 0 }));
  assert.equal(again.created, false);

  // A dedicated IPv4 replaces the shared one at the next deploy, which makes a new release.
  const res = await cp.request('/v1/ips', { body: { app: 'one', family: 'ipv4' } });
  assert.equal(res.status, 201, await res.clone().text());
  const moved = await cp.deploy(echoManifest('one', { port: 9000, count: 0 }));
  assert.equal(moved.created, true);
  const after = await cp.edgeFeed.rebuild();
  assert.deepEqual(after.endpoints.find((e) => e.name === 'one/9000')?.bind.map((b) => b.address), ['127.77.9.1', 'fd00:77::1']);

  // A /126 holds three IPv6 addresses: the fourth app's deploy is refused whole (no app is left).
  await cp.deploy(echoManifest('three', { port: 9002, count: 0 }));
  await assert.rejects(cp.deploy(echoManifest('four', { port: 9003, count: 0 })), (err: Error & { code?: string }) => err.code === 'E_POOL_EXHAUSTED');
  const list = await cp.request('/v1/apps');
  assert.deepEqual(((await list.json()) as { apps: { name: string }[] }).apps.map((a) => a.name), ['one', 'three', 'two']);
});
