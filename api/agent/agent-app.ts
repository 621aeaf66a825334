// The node agent's HTTP API (`pier agent`): the VolumeDriver calls of one storage root on this
// node, for the API server's RemoteVolumeDriver (api/volumes/drivers/remote-driver.ts). JSON for
// the small calls; a snapshot's send and receive, and its export and import as a portable file,
// are the raw byte stream in the response or request body, with the tool's pace (Node's pipe:
// backpressure both ways). A send or an export ends with a trailer saying whether the tool
// succeeded; a receive or an import whose request is cut off leaves nothing, so half a stream
// never becomes a snapshot. Every request needs the token
// (agent-auth.ts); every error is `{ error: { code, message, hint? } }`, never a stack trace.
// Paths in answers are this node's: the Docker engine here mounts them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Logger } from 'pino';
import { isPierError, PierError } from '../pier-error.js';
import type { HostStream } from '../volumes/host-stream.js';
import type { ArchivedSnapshot, VolumeDriver } from '../volumes/volume-driver.js';
import { agentAuth } from './agent-auth.js';
import { checkAgentId, encodeStatus, errorBody, STATUS_TRAILER, type AgentRoot } from './agent-protocol.js';
import { parseNames, type NamesState } from './task-names.js';

type NodeBindings = { incoming: IncomingMessage; outgoing: ServerResponse };

export interface AgentAppOptions {
  driver: VolumeDriver;
  token: string;
  version: string;
  log: Logger;
  /** Offered ports enforced in this node's tasks, when the agent watches its engine. */
  offeredPorts?: (() => NonNullable<AgentRoot['offeredPorts']>) | undefined;
  /** Takes the private names the API server pushes (task-names.ts), when the agent watches its engine. */
  setNames?: ((state: NamesState) => Promise<void>) | undefined;
}

export function createAgentApp(options: AgentAppOptions): Hono<{ Bindings: NodeBindings }> {
  const { driver, log } = options;
  const app = new Hono<{ Bindings: NodeBindings }>();
  app.use('*', agentAuth(options.token));
  // The JSON calls are small; the stream routes read their body themselves.
  const small = bodyLimit({ maxSize: 64 * 1024, onError: () => { throw new PierError('E_AGENT_BAD_REQUEST', 'the request body is larger than 64 KiB', { status: 413 }); } });

  const id = (c: Context, what = 'id') => checkAgentId(c.req.param(what) ?? '', what === 'name' ? 'staging name' : 'id');

  app.get('/v1/root', (c) => c.json({ kind: driver.kind, root: driver.root, version: options.version, offeredPorts: options.offeredPorts?.() ?? null } satisfies AgentRoot));

  // The private names of every overlay, whole (the API server's swarm-names.ts): into the hosts
  // file of each task of this node. An agent that does not watch its engine says so.
  const names = bodyLimit({ maxSize: 4 * 1024 * 1024, onError: () => { throw new PierError('E_AGENT_BAD_REQUEST', 'the private names are larger than 4 MiB', { status: 413 }); } });
  app.put('/v1/private-names', names, async (c) => {
    const state = parseNames(await jsonBody(c));
    if (!options.setNames) return c.json({ applied: false, reason: 'this agent runs without --docker-host: it writes no task\'s hosts file', ipv6: {} });
    await options.setNames(state);
    // The IPv6 address each task of this node has now: the API server names only those.
    return c.json({ applied: true, ipv6: options.offeredPorts?.().ipv6 ?? {} });
  });

  app.put('/v1/volumes/:id', small, async (c) => {
    const body = await jsonBody(c);
    return c.json({ path: await driver.create(id(c), { sizeLimitBytes: sizeLimit(body) }) });
  });
  app.get('/v1/volumes/:id', async (c) => c.json({ exists: await driver.exists(id(c)), path: driver.volumePath(id(c)) }));
  app.delete('/v1/volumes/:id', async (c) => c.json({ ok: await driver.remove(id(c)).then(() => true) }));
  app.post('/v1/volumes/:id/freeze', async (c) => c.json({ ok: await driver.freeze(id(c)).then(() => true) }));
  app.post('/v1/volumes/:id/replace', small, async (c) => {
    const snapshotId = checkAgentId(stringField(await jsonBody(c), 'snapshotId'), 'snapshotId');
    await driver.replace(id(c), snapshotId);
    return c.json({ ok: true });
  });

  app.put('/v1/snapshots/:id', small, async (c) => {
    const volumeId = checkAgentId(stringField(await jsonBody(c), 'volumeId'), 'volumeId');
    await driver.snapshot(volumeId, id(c));
    return c.json({ ok: true });
  });
  app.post('/v1/snapshots/:id/restore', small, async (c) => {
    const body = await jsonBody(c);
    const volumeId = checkAgentId(stringField(body, 'volumeId'), 'volumeId');
    return c.json({ path: await driver.restore(id(c), volumeId, { sizeLimitBytes: sizeLimit(body) }) });
  });
  app.delete('/v1/snapshots/:id', async (c) => c.json({ ok: await driver.removeSnapshot(id(c)).then(() => true) }));
  app.get('/v1/snapshots/:id/fingerprint', async (c) => c.json({ fingerprint: await driver.fingerprint(id(c)) }));
  app.get('/v1/snapshots/:id/received-fingerprint', async (c) => c.json({ fingerprint: await driver.receivedFingerprint(id(c)) }));

  // A send: the tool's output as the body, then the trailer with its outcome.
  app.get('/v1/snapshots/:id/stream', async (c) => {
    const snapshotId = id(c);
    const parentText = c.req.query('parent');
    const parent = parentText ? checkAgentId(parentText, 'parent') : null;
    return streamOut(c, driver.send(snapshotId, parent), snapshotId, 'send failed');
  });

  // Reads of the data where it is, so that the API server needs no path of this node.
  app.get('/v1/volumes/:id/usage', async (c) => c.json({ bytes: await driver.usage({ volume: id(c) }) }));
  app.get('/v1/snapshots/:id/usage', async (c) => c.json({ bytes: await driver.usage({ snapshot: id(c) }) }));
  app.get('/v1/volumes/:id/tree-hash', async (c) => c.json(await driver.treeHash({ volume: id(c) })));
  app.get('/v1/snapshots/:id/tree-hash', async (c) => c.json(await driver.treeHash({ snapshot: id(c) })));

  // An export: the portable file, made here from the header the API server sends (its database's
  // record of the snapshot), as the body; then the trailer with tar's outcome.
  app.post('/v1/snapshots/:id/export', small, async (c) => {
    const snapshotId = id(c);
    const header = archivedSnapshot((await jsonBody(c)).header);
    return streamOut(c, driver.exportSnapshot(snapshotId, header), snapshotId, 'export failed');
  });

  // An import: the portable file as the request body, checked, extracted and adopted here; the
  // answer once the snapshot is whole. A body cut off fails the read, and nothing is kept.
  app.put('/v1/snapshots/:id/import', async (c) => {
    const snapshotId = id(c);
    const incoming = c.env.incoming;
    try {
      return c.json({ snapshot: await driver.importSnapshot(snapshotId, incoming) });
    } catch (err) {
      if (!incoming.readableEnded && !isPierError(err)) {
        log.warn({ err, snapshot: snapshotId }, 'import cut off');
        throw new PierError('E_AGENT_STREAM', `the file for snapshot ${snapshotId} was cut off before its end; nothing was imported`, { status: 400, hint: 'send the whole file again', cause: err });
      }
      // A refused file's rest is read and dropped, so that the answer reaches the API server.
      incoming.removeAllListeners('readable');
      incoming.resume();
      throw err;
    }
  });

  // A receive: the request body into the tool; the answer once the tool has exited.
  app.put('/v1/snapshots/:id/stream', async (c) => {
    const snapshotId = id(c);
    const incoming = c.env.incoming;
    const sink = driver.receive(snapshotId);
    incoming.once('close', () => {
      // Cut off before its end: the tool must not take what came for the whole stream.
      if (!incoming.readableEnded) sink.abort();
    });
    incoming.pipe(sink.stream);
    try {
      await sink.done;
    } catch (err) {
      incoming.unpipe(sink.stream);
      incoming.resume();
      throw err;
    }
    return c.json({ ok: true });
  });

  app.put('/v1/staging/:name', async (c) => c.json({ path: await driver.staging(id(c, 'name')) }));
  app.delete('/v1/staging/:name', async (c) => c.json({ ok: await driver.discard(stagingPath(id(c, 'name'))).then(() => true) }));
  app.post('/v1/staging/:name/adopt', small, async (c) => {
    const snapshotId = checkAgentId(stringField(await jsonBody(c), 'snapshotId'), 'snapshotId');
    await driver.adopt(stagingPath(id(c, 'name')), snapshotId);
    return c.json({ ok: true });
  });
  app.post('/v1/flush', async (c) => c.json({ ok: await driver.flush().then(() => true) }));

  app.notFound((c) => c.json(errorBody('E_AGENT_ROUTE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, 'the API server and the agent should run the same Pier version'), 404));
  app.onError((err, c) => {
    const coded = asCoded(err);
    if (coded.status >= 500) log.error({ err, method: c.req.method, path: c.req.path }, 'request failed');
    return c.json(errorBody(coded.code, coded.message, coded.hint), coded.status as ContentfulStatusCode);
  });
  return app;

  function stagingPath(name: string): string {
    return `${driver.root}/staging/${name}`;
  }

  /** A tool's output as the answer's body, as it comes, then the trailer with the tool's outcome. */
  async function streamOut(c: Context<{ Bindings: NodeBindings }>, source: HostStream<Readable>, snapshotId: string, failed: string): Promise<Response> {
    const out = c.env.outgoing;
    source.stream.on('error', () => undefined); // the tool's failure is told by `done`, in the trailer
    const outcome = source.done.then(
      () => null,
      (err: unknown) => err,
    );
    out.writeHead(200, { 'content-type': 'application/octet-stream', trailer: STATUS_TRAILER });
    // The API server went away (or gave up): the tool stops too.
    out.once('close', () => {
      if (!out.writableFinished) source.abort();
    });
    source.stream.pipe(out, { end: false });
    await new Promise<void>((resolve) => {
      source.stream.once('end', resolve);
      source.stream.once('close', resolve);
    });
    const err = await outcome;
    if (err) log.warn({ err, snapshot: snapshotId }, failed);
    if (out.destroyed) return RESPONSE_ALREADY_SENT;
    out.addTrailers({ [STATUS_TRAILER]: encodeStatus(err ? asCoded(err) : null) });
    out.end();
    return RESPONSE_ALREADY_SENT;
  }
}

/** The header of an export, as the API server sends it; anything else is E_AGENT_BAD_REQUEST. */
function archivedSnapshot(value: unknown): ArchivedSnapshot {
  const h = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const text = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 256;
  if (!text(h.id) || !text(h.volume) || !text(h.createdAt) || typeof h.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(h.sha256) || !count(h.bytes) || !count(h.files)) {
    throw new PierError('E_AGENT_BAD_REQUEST', '"header" is not a snapshot\'s header ({ id, volume, sha256, bytes, files, createdAt })', { status: 400 });
  }
  return { id: h.id as string, volume: h.volume as string, sha256: h.sha256, bytes: h.bytes as number, files: h.files as number, createdAt: h.createdAt as string };
}

/** A PierError as it is; anything else an E_AGENT_INTERNAL whose detail stays in the agent's log. */
function asCoded(err: unknown): { code: string; message: string; hint: string | undefined; status: number } {
  if (isPierError(err)) return { code: err.code, message: err.message, hint: err.hint, status: err.status };
  return { code: 'E_AGENT_INTERNAL', message: 'the node agent hit an unexpected error; its log has the details', hint: undefined, status: 500 };
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new PierError('E_AGENT_BAD_REQUEST', 'the request body is not a JSON object', { status: 400 });
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string') throw new PierError('E_AGENT_BAD_REQUEST', `"${name}" is missing or not a string`, { status: 400 });
  return value;
}

function sizeLimit(body: Record<string, unknown>): number | null {
  const value = body.sizeLimitBytes;
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new PierError('E_AGENT_BAD_REQUEST', '"sizeLimitBytes" is not a positive whole number', { status: 400 });
  return value;
}
