// The tunnel routes over the real HTTP server on the in-memory runtime: who may open a tunnel
// (connect, exec and admin may; deploy and read may not; a connect token is bound to its app and
// needs one), where `…/connect` says it goes, and a session whose instance goes away ends with
// E_INSTANCE_GONE, in the trail as an audit.session with its bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import type { EventView, InstanceView } from '../../../api/views.js';
import { captureLog } from '../../support/log-capture.js';
import { memoryManifest, startMemoryServer, type MemoryServer } from '../../support/memory-server.js';
import { createTestDbUrl } from '../../support/test-db.js';

/** `p`, or a failure naming `what` after `ms`: a wait in this test never hangs the run. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} in ${ms / 1000} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await within(check(), 10_000, `answer while waiting for ${what}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

async function token(s: MemoryServer, body: Record<string, string>): Promise<{ status: number; secret?: string; code?: string }> {
  const res = await s.request('/v1/tokens', { body });
  const json = (await res.json()) as { secret?: string; error?: { code: string } };
  return { status: res.status, secret: json.secret, code: json.error?.code };
}

test('who may open a tunnel, where it goes, and a session whose instance goes away', async (t) => {
  const s = await startMemoryServer({ databaseUrl: await createTestDbUrl(t), log: captureLog('warn').log }, t);
  const manifest = memoryManifest('db', 5432, 1).replace('target = 8080', 'target = 8080\naccess = "private"');
  assert.equal((await s.request('/v1/deploys', { body: { manifest } })).status, 201);
  assert.equal((await s.request('/v1/deploys', { body: { manifest: memoryManifest('web', 9000, 1) } })).status, 201);
  let instance: InstanceView | undefined;
  await until('db running', async () => {
    const { instances } = (await (await s.request('/v1/apps/db/instances')).json()) as { instances: InstanceView[] };
    instance = instances.find((i) => i.state === 'running');
    return instance !== undefined;
  });

  const where = (secret: string, app = 'db') => fetch(`${s.server.apiUrl}/v1/apps/${app}/connect?port=5432`, { headers: { authorization: `Bearer ${secret}` } });
  const connect = await token(s, { scope: 'connect', app: 'db', name: 'dba' });
  const exec = await token(s, { scope: 'exec' });
  const deploy = await token(s, { scope: 'deploy' });
  const webOnly = await token(s, { scope: 'connect', app: 'web' });
  assert.deepEqual(await token(s, { scope: 'connect' }), { status: 400, secret: undefined, code: 'E_BAD_REQUEST' });

  const ok = await where(connect.secret as string);
  assert.equal(ok.status, 200);
  const view = (await ok.json()) as Record<string, unknown>;
  assert.match(String(view.endpoint), /^ep_/);
  assert.deepEqual({ ...view, endpoint: null }, { app: 'db', port: 5432, endpoint: null, access: 'private', process: 'web', instance: instance?.id, target: 8080, proxyProtocol: 'none' });
  assert.equal((await where(exec.secret as string)).status, 200, 'exec grants connect');
  assert.equal((await where(s.token)).status, 200, 'admin grants connect');
  const refused = await where(deploy.secret as string);
  assert.equal(refused.status, 403, 'a deploy token opens no tunnels');
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'E_FORBIDDEN');
  assert.equal((await where(webOnly.secret as string)).status, 404, 'another app reads as not found');
  assert.equal((await where(connect.secret as string, 'web')).status, 404);
  const noSuch = await fetch(`${s.server.apiUrl}/v1/apps/db/connect?port=1`, { headers: { authorization: `Bearer ${connect.secret}` } });
  assert.equal(((await noSuch.json()) as { error: { code: string } }).error.code, 'E_ENDPOINT_NOT_FOUND');

  // A session: bytes go round the echo; then the instance dies, and the client hears why.
  const ws = new WebSocket(`${s.server.apiUrl.replace('http', 'ws')}/v1/apps/db/connect/ws?port=5432&kind=connect`, { headers: { authorization: `Bearer ${connect.secret}` } });
  const frames: { binary: boolean; data: Buffer }[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => frames.push({ binary, data }));
  const closed = new Promise<number>((resolve) => ws.once('close', resolve));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(Buffer.from('ping'), { binary: true });
  await until('the echo', async () => Buffer.concat(frames.filter((f) => f.binary).map((f) => f.data)).toString() === 'ping');
  const [container] = (await s.runtime.list({})).filter((c) => c.state === 'running' && c.labels['dev.pier.instance'] === instance?.id);
  assert.ok(container, 'the instance has a container');
  s.runtime.crash(container.id);
  assert.equal(await within(closed, 20_000, 'close of the session after its instance crashed'), 1011);
  const error = frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()) as { type: string; error: { code: string; hint: string } }).find((m) => m.type === 'error');
  assert.equal(error?.error.code, 'E_INSTANCE_GONE');
  assert.match(error?.error.hint ?? '', /pier status --app db/);

  // Refused upgrades and the session are both in the trail.
  const bad = new WebSocket(`${s.server.apiUrl.replace('http', 'ws')}/v1/apps/db/connect/ws?port=5432`, { headers: { authorization: `Bearer ${deploy.secret}` } });
  const status = await within(new Promise<number>((resolve) => bad.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))), 20_000, 'answer to a refused upgrade');
  assert.equal(status, 403);
  await until('the audit events', async () => {
    const { events } = (await (await s.request('/v1/events?type=audit.*&limit=100')).json()) as { events: EventView[] };
    const sessions = events.filter((e) => e.type === 'audit.session').map((e) => e.data as { kind: string; errorCode: string | null; bytesIn: number; bytesOut: number; token: { name: string }; status: number });
    const gone = sessions.find((d) => d.errorCode === 'E_INSTANCE_GONE');
    const denied = sessions.find((d) => d.errorCode === 'E_FORBIDDEN');
    if (!gone || !denied) return false;
    assert.deepEqual([gone.kind, gone.bytesIn, gone.bytesOut, gone.token.name, gone.status], ['connect', 4, 4, 'dba', 101]);
    assert.equal(denied.status, 403);
    return true;
  });
});
