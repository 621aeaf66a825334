// Volumes and snapshots of an app (api/volumes/volume-service.ts): list, create, describe, delete
// and undelete volumes; take, list, describe, delete and restore snapshots.
import { Readable } from 'node:stream';
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import type { ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, parseQuery, readJson } from '../request.js';
import { parseSize } from '../manifest.js';
import { moveView, moveViewSchema, snapshotView, snapshotViewSchema, volumeDescriptionSchema, volumeView, volumeViewSchema } from '../volumes/volume-views.js';
import type { VolumeService } from '../volumes/volume-service.js';
import type { MoveResult } from '../volumes/volume-mover.js';
import { exportSnapshot, importSnapshot } from '../volumes/snapshot-archive.js';
import { DEFAULT_ROOT } from '../volumes/volume-roots.js';

const volumeName = z.string().regex(/^[a-z][a-z0-9-]{0,59}$/, 'must start with a letter and hold only a-z, 0-9 and "-"');
const listQuery = z.object({ deleted: z.enum(['true', 'false']).default('false').describe('true: the deleted volumes (undelete brings them back), and those of deleted apps of that name (kept until their purge)') });
const createBody = z.object({
  name: volumeName,
  size: z.string().regex(/^\d+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/, 'must be a size like "512MiB" or "1GiB"').optional().describe('size limit (enforced by the btrfs driver)'),
  root: z.string().min(1).default(DEFAULT_ROOT).describe('the storage root to make it on (pier server --volume-root NAME=PATH; `default` is the volumes folder; on a swarm, `node:ADDRESS` is that node through its agent, and a group naming the volume runs there)'),
});
const snapshotsQuery = z.object({ volume: z.string().optional().describe('only the snapshots of this volume') });
const restoreBody = z.object({
  inPlace: z.boolean().default(false).describe("true: the snapshot's own volume gets its data back (its instance is stopped, a pre-restore snapshot taken, then started again)"),
  name: volumeName.optional().describe('the new volume (without inPlace); default `<volume>-<snapshot suffix>`'),
});
const volumeAnswer = z.object({ volume: volumeViewSchema });
const snapshotAnswer = z.object({ snapshot: snapshotViewSchema });

describeRoute({ method: 'get', path: '/v1/apps/:app/volumes', scope: 'read', summary: "An app's volumes", query: listQuery, response: z.object({ volumes: z.array(volumeViewSchema) }), errors: [404] });
describeRoute({ method: 'post', path: '/v1/apps/:app/volumes', scope: 'deploy', summary: 'Create an empty volume (a manifest that names it mounts it)', body: createBody, response: volumeAnswer, status: 201, errors: [400, 404, 409] });
describeRoute({ method: 'get', path: '/v1/apps/:app/volumes/:volume', scope: 'read', summary: 'A volume, its usage and its snapshots', response: volumeDescriptionSchema, errors: [404] });
describeRoute({
  method: 'delete',
  path: '/v1/apps/:app/volumes/:volume',
  scope: 'deploy',
  summary: 'Delete a volume: refused while attached to a running instance (E_VOLUME_ATTACHED); a final snapshot is kept for the undelete period',
  response: z.object({ volume: volumeViewSchema, finalSnapshot: snapshotViewSchema }),
  errors: [404, 409],
});
const moveBody = z.object({
  to: z.string().min(1).describe('the storage root to move to (pier server --volume-root NAME=PATH; `default` is the volumes folder; on a swarm, `node:ADDRESS` moves it and its writer to that node)'),
  group: z.boolean().optional().describe("true: the process's other volumes (other entries, every slot of a per-instance volume) that are not on that root move with it, with one cutover"),
});
const movedSchema = z.object({ volume: volumeViewSchema, move: moveViewSchema });
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/volumes/:volume/move',
  scope: 'deploy',
  summary: 'Move a volume (with its instance) to another storage root: pre-copy while it runs, then drain, stop, final snapshot, delta, verify, start on the target; answers when it runs there',
  description:
    'The roots may be of different drivers (btrfs and dir): the data then goes as the export file, whole, the final copy too (no delta). A second move of the same volume meanwhile is E_VOLUME_MOVING. On a swarm, one volume of a process that has several (other entries, or other slots of a per-instance volume) cannot move alone (E_VOLUME_MOVE_SPLIT): `group: true` moves them together, on a swarm or one engine: each is pre-copied while the process runs, then one cutover stops the process, and all are switched at once (all or none; no target is made ahead). `group` lists each volume moved with its move; `volume` and `move` are the first of them (the named volume, unless it was on that root already). A failure before the switch rolls back (event volume.move_failed with the phase; for a group, every volume of it); the instance runs on the source again.',
  body: moveBody,
  response: movedSchema.extend({ group: z.array(movedSchema) }),
  errors: [400, 404, 409, 500],
});
describeRoute({ method: 'post', path: '/v1/apps/:app/volumes/:volume/undelete', scope: 'deploy', summary: 'Bring a deleted volume back from its final snapshot', response: volumeAnswer, errors: [404, 409] });
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/volumes/:volume/snapshots',
  scope: 'deploy',
  summary: "Take a snapshot now, held as the volume's `consistency` says (pause, hook, or none: crash-consistent)",
  response: snapshotAnswer,
  status: 201,
  errors: [404, 409, 422],
});
describeRoute({ method: 'get', path: '/v1/apps/:app/snapshots', scope: 'read', summary: "An app's snapshots, newest first", query: snapshotsQuery, response: z.object({ snapshots: z.array(snapshotViewSchema) }), errors: [404] });
describeRoute({ method: 'get', path: '/v1/apps/:app/snapshots/:snapshot', scope: 'read', summary: 'A snapshot: size, sha256, expiry', response: snapshotAnswer, errors: [404] });
describeRoute({ method: 'delete', path: '/v1/apps/:app/snapshots/:snapshot', scope: 'deploy', summary: 'Delete a snapshot', response: snapshotAnswer, errors: [404] });
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/snapshots/:snapshot/restore',
  scope: 'deploy',
  summary: 'Restore a snapshot into a new volume (default) or in place',
  body: restoreBody,
  response: z.object({ volume: volumeViewSchema, preRestoreSnapshot: snapshotViewSchema.nullable() }),
  errors: [404, 409],
});

describeRoute({
  method: 'get',
  path: '/v1/apps/:app/snapshots/:snapshot/export',
  scope: 'read',
  summary: 'A snapshot as a portable file, streamed (no content-length): a `PIER-SNAPSHOT/2 {json}` header line (the snapshot\'s tree sha256, size, files), a tar of its files, then a trailer line `PIER-END <payload bytes, 16 digits> <payload sha256>`',
  response: { type: 'string', format: 'binary' },
  contentType: 'application/octet-stream',
  errors: [404],
});
const importQuery = z.object({
  root: z.string().min(1).default(DEFAULT_ROOT).describe('the storage root the snapshot goes to (pier server --volume-root NAME=PATH; `default` is the volumes folder); a volume restored from it is made there'),
});
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/snapshots/import',
  scope: 'deploy',
  summary: 'Import a file made by export as a new snapshot of the app (no body limit); a truncated or damaged file is E_SNAPSHOT_CORRUPT and changes nothing',
  description:
    'The body is the file as export wrote it (application/octet-stream). A root the server was not given is E_VOLUME_ROOT_UNKNOWN (its hint lists the roots), answered before the body is read. Restore the new snapshot into a volume with POST /v1/apps/{app}/snapshots/{snapshot}/restore.',
  query: importQuery,
  response: snapshotAnswer,
  status: 201,
  errors: [400, 404, 422],
});

/** The one route whose body has no size limit (api/app.ts skips the limit for it). */
export function isSnapshotImport(method: string, path: string): boolean {
  return method === 'POST' && /^\/v1\/apps\/[^/]+\/snapshots\/import$/.test(path);
}

export function volumeRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();
  const service = (): VolumeService => {
    if (!deps.volumes) throw new PierError('E_VOLUMES_UNAVAILABLE', 'this server has no volume storage configured', { status: 503, hint: 'set PIER_VOLUMES_DIR for pier server' });
    return deps.volumes;
  };

  r.get('/apps/:app/volumes', async (c) => {
    const q = parseQuery(listQuery, c.req.query());
    const rows = await service().list(c.get('auth'), c.req.param('app'), q.deleted === 'true');
    return c.json({ volumes: rows.map(volumeView) });
  });
  r.post('/apps/:app/volumes', async (c) => {
    const body = parseBody(createBody, await readJson(c.req));
    const row = await service().create(c.get('auth'), c.req.param('app'), body.name, body.size ? parseSize(body.size) : null, body.root);
    return c.json({ volume: volumeView(row) }, 201);
  });
  r.get('/apps/:app/volumes/:volume', async (c) => {
    const d = await service().describe(c.get('auth'), c.req.param('app'), c.req.param('volume'));
    return c.json({ volume: volumeView(d.volume), usedBytes: d.usedBytes, snapshots: d.snapshots.map(snapshotView) });
  });
  r.delete('/apps/:app/volumes/:volume', async (c) => {
    const d = await service().delete(c.get('auth'), c.req.param('app'), c.req.param('volume'));
    return c.json({ volume: volumeView(d.volume), finalSnapshot: snapshotView(d.finalSnapshot) });
  });
  r.post('/apps/:app/volumes/:volume/undelete', async (c) => {
    return c.json({ volume: volumeView(await service().undelete(c.get('auth'), c.req.param('app'), c.req.param('volume'))) });
  });
  r.post('/apps/:app/volumes/:volume/move', async (c) => {
    const body = parseBody(moveBody, await readJson(c.req));
    service();
    if (!deps.volumeMover) throw new PierError('E_VOLUMES_UNAVAILABLE', 'this server cannot move volumes', { status: 503, hint: 'set PIER_VOLUMES_DIR for pier server' });
    const done = await deps.volumeMover.move(c.get('auth'), c.req.param('app'), c.req.param('volume'), body.to, { group: body.group === true });
    const view = (r: MoveResult) => ({ volume: volumeView(r.volume), move: moveView(r.move, r.phases, r.steps) });
    return c.json({ ...view(done), group: done.group.map(view) });
  });
  r.post('/apps/:app/volumes/:volume/snapshots', async (c) => {
    const snap = await service().snapshot(c.get('auth'), c.req.param('app'), c.req.param('volume'));
    return c.json({ snapshot: snapshotView(snap) }, 201);
  });
  r.get('/apps/:app/snapshots', async (c) => {
    const q = parseQuery(snapshotsQuery, c.req.query());
    const rows = await service().listSnapshots(c.get('auth'), c.req.param('app'), q.volume);
    return c.json({ snapshots: rows.map(snapshotView) });
  });
  r.get('/apps/:app/snapshots/:snapshot', async (c) => {
    return c.json({ snapshot: snapshotView(await service().describeSnapshot(c.get('auth'), c.req.param('app'), c.req.param('snapshot'))) });
  });
  r.delete('/apps/:app/snapshots/:snapshot', async (c) => {
    return c.json({ snapshot: snapshotView(await service().deleteSnapshot(c.get('auth'), c.req.param('app'), c.req.param('snapshot'))) });
  });
  r.post('/apps/:app/snapshots/:snapshot/restore', async (c) => {
    const body = parseBody(restoreBody, await readJson(c.req));
    const auth = c.get('auth');
    if (body.inPlace) {
      if (body.name) throw new PierError('E_BAD_REQUEST', 'name is for a restore into a new volume, not in place', { status: 400, hint: 'leave out one of them' });
      const done = await service().restoreInPlace(auth, c.req.param('app'), c.req.param('snapshot'));
      return c.json({ volume: volumeView(done.volume), preRestoreSnapshot: snapshotView(done.preRestoreSnapshot) });
    }
    const volume = await service().restoreNew(auth, c.req.param('app'), c.req.param('snapshot'), body.name);
    return c.json({ volume: volumeView(volume), preRestoreSnapshot: null });
  });

  r.get('/apps/:app/snapshots/:snapshot/export', async (c) => {
    const svc = service();
    const app = await svc.findApp(c.get('auth'), c.req.param('app'), 'read');
    const snap = await svc.findSnapshot(app, c.req.param('snapshot'));
    const file = await exportSnapshot(svc.roots.get(snap.root), snap);
    return c.body(Readable.toWeb(file.stream) as ReadableStream, 200, {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="${snap.id}.pier-snapshot"`,
    });
  });
  r.post('/apps/:app/snapshots/import', async (c) => {
    const svc = service();
    const q = parseQuery(importQuery, c.req.query());
    const app = await svc.findApp(c.get('auth'), c.req.param('app'), 'deploy');
    // Checked before a byte of the body is read: an unknown root is E_VOLUME_ROOT_UNKNOWN, naming the roots there are.
    const driver = svc.roots.get(q.root);
    const body = c.req.raw.body;
    if (!body) throw new PierError('E_SNAPSHOT_CORRUPT', 'the request has no body; nothing was imported', { status: 422, hint: 'send the file made by pier volumes export' });
    const fields = await importSnapshot(driver, q.root, Readable.fromWeb(body as import('node:stream/web').ReadableStream));
    const row = await svc.recordImported(app, fields);
    return c.json({ snapshot: snapshotView(row) }, 201);
  });

  return r;
}
