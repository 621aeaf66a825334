// The `remote` volume driver: a storage root on another node, reached through that node's agent
// (`pier agent`, api/agent/). Every call is the agent's driver doing it there; the paths it
// reports are that node's (what its Docker engine mounts), and its kind is the agent's driver's
// (dir or btrfs), so a move between roots of one kind works across nodes the way it does on one.
// A snapshot's send and receive are HTTP bodies: the same byte streams volume-transfer.ts pipes
// between local tools. A send the agent's tool failed ends as an error, never as a whole-looking
// stream; an aborted receive is cut off, which makes the agent kill its tool. The reads of the
// data (a size, a tree hash, a snapshot's export and import as a portable file) are done by the
// agent too: the paths this driver reports are for the node's Docker engine, never read here.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { posix } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { createAgentTransport } from '../../agent/agent-transport.js';
import { decodeStatus, STATUS_TRAILER, type AgentRoot } from '../../agent/agent-protocol.js';
import { PierError } from '../../pier-error.js';
import type { HostStream } from '../host-stream.js';
import type { TreeHash } from '../tree-hash.js';
import type { DriverData, ImportedSnapshot, VolumeDriver } from '../volume-driver.js';

export interface RemoteDriverOptions {
  /** The agent's base URL, `http://ADDRESS:PORT`. */
  url: string;
  token: string;
}

/** Asks the agent which root it serves (and so checks the URL and token), then returns its driver. */
export async function connectRemoteVolumeDriver(options: RemoteDriverOptions): Promise<VolumeDriver> {
  const agent = createAgentTransport(options.url, options.token);
  const info = await agent.call<AgentRoot>('GET', '/v1/root');
  if ((info.kind !== 'dir' && info.kind !== 'btrfs') || typeof info.root !== 'string') {
    throw new PierError('E_AGENT_PROTOCOL', `the node agent at ${options.url} serves an unknown kind of root (${String(info.kind)})`, { status: 502, hint: 'run the same Pier version on the API server and the nodes' });
  }
  const root = info.root;
  const enc = encodeURIComponent;
  const volumePath = (id: string) => posix.join(root, 'volumes', id);
  const snapshotPath = (id: string) => posix.join(root, 'snapshots', id);
  const stagingName = (dir: string) => {
    if (posix.dirname(dir) !== posix.join(root, 'staging')) {
      throw new PierError('E_AGENT_BAD_REQUEST', `${dir} is not a staging folder of ${root} on the node agent ${options.url}`, { status: 400, hint: 'pass a path staging() returned' });
    }
    return posix.basename(dir);
  };

  const dataPath = (of: DriverData) => ('volume' in of ? `/v1/volumes/${enc(of.volume)}` : `/v1/snapshots/${enc(of.snapshot)}`);
  const notAgents = (what: string) => new PierError('E_AGENT_PROTOCOL', `the answer from ${options.url} is not a node agent's ${what}`, { status: 502, hint: 'run the same Pier version on the API server and the nodes' });

  /**
   * A streamed answer (a send, an export) as a HostStream: whole only when the agent's trailer says
   * its tool succeeded, so a failed or broken stream never ends like a whole one.
   */
  function trailed(opened: { request: ClientRequest; response: Promise<IncomingMessage> }, what: string, hint: string): HostStream<Readable> {
    const { request, response } = opened;
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    out.on('error', () => undefined); // the consumer's pipeline reports it; never an unhandled 'error'
    // The reader went away (a client that stopped downloading): the request ends, and the agent stops its tool.
    out.once('close', () => {
      if (!out.writableFinished) request.destroy();
    });
    const cutOff = () => new PierError('E_AGENT_STREAM', `${what} from ${options.url} was cut off before its end`, { status: 502, hint: `the node agent stopped or the network failed; ${hint}` });
    const done = (async () => {
      let res: IncomingMessage;
      try {
        res = await response;
        if (res.statusCode !== 200) throw await agent.failure(res);
      } catch (err) {
        out.destroy(err as Error);
        throw err;
      }
      res.pipe(out, { end: false });
      const outcome = await new Promise<PierError | null>((resolve) => {
        res.once('end', () => {
          const status = decodeStatus(res.trailers[STATUS_TRAILER]);
          resolve(status === null ? null : status === undefined ? cutOff() : agent.agentError(status, 500));
        });
        res.once('error', () => resolve(cutOff()));
        res.once('aborted', () => resolve(cutOff()));
      });
      if (outcome) {
        out.destroy(outcome);
        throw outcome;
      }
      out.end();
    })();
    return {
      stream: out,
      done,
      abort: () => {
        request.destroy();
        out.destroy(new PierError('E_AGENT_STREAM', `${what} from ${options.url} was aborted`, { status: 502 }));
      },
    };
  }

  return {
    kind: info.kind,
    root,
    volumePath,
    snapshotPath,
    create: async (id, o) => (await agent.call<{ path: string }>('PUT', `/v1/volumes/${enc(id)}`, { sizeLimitBytes: o?.sizeLimitBytes ?? null })).path,
    exists: async (id) => (await agent.call<{ exists: boolean }>('GET', `/v1/volumes/${enc(id)}`)).exists,
    remove: async (id) => void (await agent.call('DELETE', `/v1/volumes/${enc(id)}`)),
    snapshot: async (volumeId, snapshotId) => void (await agent.call('PUT', `/v1/snapshots/${enc(snapshotId)}`, { volumeId })),
    restore: async (snapshotId, volumeId, o) => (await agent.call<{ path: string }>('POST', `/v1/snapshots/${enc(snapshotId)}/restore`, { volumeId, sizeLimitBytes: o?.sizeLimitBytes ?? null })).path,
    replace: async (volumeId, snapshotId) => void (await agent.call('POST', `/v1/volumes/${enc(volumeId)}/replace`, { snapshotId })),
    removeSnapshot: async (id) => void (await agent.call('DELETE', `/v1/snapshots/${enc(id)}`)),
    staging: async (name) => (await agent.call<{ path: string }>('PUT', `/v1/staging/${enc(name)}`)).path,
    discard: async (dir) => void (await agent.call('DELETE', `/v1/staging/${enc(stagingName(dir))}`)),
    adopt: async (dir, snapshotId) => void (await agent.call('POST', `/v1/staging/${enc(stagingName(dir))}/adopt`, { snapshotId })),
    fingerprint: async (id) => (await agent.call<{ fingerprint: string }>('GET', `/v1/snapshots/${enc(id)}/fingerprint`)).fingerprint,
    receivedFingerprint: async (id) => (await agent.call<{ fingerprint: string | null }>('GET', `/v1/snapshots/${enc(id)}/received-fingerprint`)).fingerprint,
    freeze: async (id) => void (await agent.call('POST', `/v1/volumes/${enc(id)}/freeze`)),
    flush: async () => void (await agent.call('POST', '/v1/flush')),

    send: (snapshotId, parentId) =>
      trailed(agent.download('GET', `/v1/snapshots/${enc(snapshotId)}/stream${parentId ? `?parent=${enc(parentId)}` : ''}`), `the send of snapshot ${snapshotId}`, 'the move is rolled back, try again'),

    usage: async (of) => {
      const { bytes } = await agent.call<{ bytes: unknown }>('GET', `${dataPath(of)}/usage`);
      if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) throw notAgents('a usage');
      return bytes;
    },
    treeHash: async (of) => {
      const tree = await agent.call<TreeHash>('GET', `${dataPath(of)}/tree-hash`);
      if (typeof tree?.sha256 !== 'string' || typeof tree.bytes !== 'number' || typeof tree.files !== 'number') throw notAgents('a tree hash');
      return { sha256: tree.sha256, bytes: tree.bytes, files: tree.files };
    },
    // The header is the API server's record of the snapshot; the agent makes the file beside the data.
    exportSnapshot: (snapshotId, header) =>
      trailed(agent.download('POST', `/v1/snapshots/${enc(snapshotId)}/export`, { header }), `the export of snapshot ${snapshotId}`, 'the file is incomplete: export it again'),

    async importSnapshot(snapshotId, file) {
      const { request, response } = agent.upload('PUT', `/v1/snapshots/${enc(snapshotId)}/import`);
      // A write after the agent answered (it refused the file early) is an EPIPE the answer explains.
      request.on('error', () => undefined);
      // The file's own source failed (the client went away): the upload is cut off, so the agent keeps nothing.
      let sourceError: unknown = null;
      file.once('error', (err) => {
        sourceError = err;
        request.destroy();
      });
      file.pipe(request);
      let res: IncomingMessage;
      try {
        res = await response;
      } catch (err) {
        throw sourceError ?? err;
      }
      try {
        const { snapshot } = await agent.answer<{ snapshot: ImportedSnapshot }>(res);
        if (typeof snapshot?.sha256 !== 'string' || typeof snapshot.volumeName !== 'string' || typeof snapshot.bytes !== 'number' || typeof snapshot.files !== 'number') throw notAgents('an import');
        return { volumeName: snapshot.volumeName, sha256: snapshot.sha256, bytes: snapshot.bytes, files: snapshot.files };
      } finally {
        // Refused early: the rest of the file is not sent.
        file.unpipe(request);
        request.destroy();
      }
    },

    receive(snapshotId): HostStream<Writable> {
      const { request, response } = agent.upload('PUT', `/v1/snapshots/${enc(snapshotId)}/stream`);
      // A write after the agent answered (its tool failed early) is an EPIPE the answer explains.
      request.on('error', () => undefined);
      const done = (async () => {
        const res = await response;
        if ((res.statusCode ?? 0) >= 300) throw await agent.failure(res);
        res.resume();
      })();
      return {
        stream: request,
        done,
        // Cut off before its end: the agent kills its tool, so nothing half-received becomes a snapshot.
        abort: () => request.destroy(new Error('aborted by the sender')),
      };
    },
  };
}
