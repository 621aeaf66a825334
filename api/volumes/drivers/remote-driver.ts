// The `remote` volume driver: a storage root on another node, reached through that node's agent
// (`pier agent`, api/agent/). Every call is the agent's driver doing it there; the paths it
// reports are that node's (what its Docker engine mounts), and its kind is the agent's driver's
// (dir or btrfs), so a move between roots of one kind works across nodes the way it does on one.
// A snapshot's send and receive are HTTP bodies: the same byte streams volume-transfer.ts pipes
// between local tools. A send the agent's tool failed ends as an error, never as a whole-looking
// stream; an aborted receive is cut off, which makes the agent kill its tool.
// Not for paths: the API server reads no file under `root` itself. Callers that do (a snapshot's
// tree hash, export and import of snapshot files) need the agent's streamed variants, the next step
// (docs/several-machines.md, "The node agent").
import type { IncomingMessage } from 'node:http';
import { posix } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { createAgentTransport } from '../../agent/agent-transport.js';
import { decodeStatus, STATUS_TRAILER, type AgentRoot } from '../../agent/agent-protocol.js';
import { PierError } from '../../pier-error.js';
import type { HostStream } from '../host-stream.js';
import type { VolumeDriver } from '../volume-driver.js';

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

    send(snapshotId, parentId): HostStream<Readable> {
      const { request, response } = agent.download('GET', `/v1/snapshots/${enc(snapshotId)}/stream${parentId ? `?parent=${enc(parentId)}` : ''}`);
      const out = new PassThrough({ highWaterMark: 1024 * 1024 });
      out.on('error', () => undefined); // the consumer's pipeline reports it; never an unhandled 'error'
      const cutOff = () => new PierError('E_AGENT_STREAM', `the send of snapshot ${snapshotId} from ${options.url} was cut off before its end`, { status: 502, hint: 'the node agent stopped or the network failed; the move is rolled back, try again' });
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
        // Whole only when the agent's trailer says its tool succeeded: a failed send never ends like a whole one.
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
          out.destroy(new PierError('E_AGENT_STREAM', `the send of snapshot ${snapshotId} from ${options.url} was aborted`, { status: 502 }));
        },
      };
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
