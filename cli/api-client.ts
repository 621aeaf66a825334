// A typed client of Pier's HTTP API; response types come from api/views.ts (types only).
import type { CertificateView } from '../api/routes/certs.js';
import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream';
import type { AppDeletedView, AppView, DeployView, DeploymentView, EdgeView, ErrorBody, EventView, ExecResultView, InstanceView, IpView, LogLineView, NodeView, PoolView, ReleaseView, StatusView, TokenView } from '../api/views.js';
import type { GcResult } from '../api/registry/registry-gc.js';
import type { MoveView, SnapshotView, VolumeDescription, VolumeView } from '../api/volumes/volume-views.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError } from './cli-error.js';
import type { ClientConfig } from './client-config.js';
import { exitCodeForApiError } from './exit-codes.js';
import { openExecSocket, type ExecSocket } from './exec-socket.js';
import type WebSocket from 'ws';
import type { TunnelTargetView } from '../api/routes/connect.js';
import { openTunnelSocket } from './tunnel-socket.js';
import { apiFetch, apiSocketOptions } from './api-transport.js';

export interface DeployRequest {
  manifest: string;
  file: string;
  description?: string;
  /** For a manifest with [build]: the image the build pushed. */
  build?: { image: string };
  /** About the environment the client acts in (made on first deploy). */
  environment?: { ttl?: string; branch?: string; commit?: string; pr?: number } | undefined;
}

export interface BuildQuery {
  app: string;
  dockerfile: string;
  target?: string | undefined;
  args: Record<string, string>;
}

/** One document of POST /v1/builds's answer (api/routes/builds.ts). */
export type BuildEvent =
  | { type: 'line'; line: string }
  | { type: 'built'; image: string; digest: string; imageId: string; contextHash: string }
  | { type: 'error'; error: ErrorBody['error'] };

export interface LogsQuery {
  process?: string | undefined;
  instance?: string | undefined;
  since?: string | undefined;
  tail?: number | undefined;
  grep?: string | undefined;
}

export interface CreateTokenRequest {
  scope: TokenView['scope'];
  name?: string | undefined;
  app?: string | undefined;
  expiresIn?: string | undefined;
  environments?: string | undefined;
}

export class ApiClient {
  constructor(private readonly config: ClientConfig) {}

  /** Every app this token can see (all pages); with `deleted`, the deleted ones instead. */
  async listApps(options: { deleted?: boolean } = {}): Promise<{ apps: AppView[] }> {
    return { apps: await this.all<AppView>(options.deleted ? '/v1/apps?deleted=true' : '/v1/apps', 'apps') };
  }

  /** Deletes the app and waits up to `waitSeconds` for its containers to be gone. */
  deleteApp(app: string, waitSeconds: number): Promise<AppDeletedView> {
    return this.request('DELETE', `/v1/apps/${encodeURIComponent(app)}?wait=${waitSeconds}`);
  }

  status(app: string): Promise<StatusView> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}`);
  }

  /** Mutating calls take an Idempotency-Key: a retry of the same call is answered, not redone. */
  deploy(body: DeployRequest, idempotencyKey: string): Promise<DeployView> {
    return this.request('POST', '/v1/deploys', body, idempotencyKey);
  }

  /** Every release of the app, newest first (all pages). */
  async releases(app: string): Promise<{ releases: (ReleaseView & { current: boolean })[] }> {
    return { releases: await this.all(`/v1/apps/${encodeURIComponent(app)}/releases`, 'releases') };
  }

  rollback(app: string, body: { version?: number; description?: string }, idempotencyKey: string): Promise<DeployView> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/rollback`, body, idempotencyKey);
  }

  scale(app: string, counts: Record<string, number>, idempotencyKey: string): Promise<{ app: string; scale: Record<string, number>; changed: boolean }> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/scale`, { counts }, idempotencyKey);
  }

  createToken(body: CreateTokenRequest): Promise<{ token: TokenView; secret: string }> {
    return this.request('POST', '/v1/tokens', body);
  }

  /** Every token of the org that is not revoked (all pages). */
  async listTokens(): Promise<{ tokens: TokenView[] }> {
    return { tokens: await this.all<TokenView>('/v1/tokens', 'tokens') };
  }

  rotateToken(id: string, overlap?: string | undefined): Promise<{ token: TokenView; secret: string }> {
    return this.request('POST', `/v1/tokens/${encodeURIComponent(id)}/rotate`, overlap ? { overlap } : {});
  }

  revokeToken(id: string): Promise<{ token: TokenView }> {
    return this.request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  }

  /** One registry garbage collection (or, with dryRun, what it would remove). */
  registryGc(dryRun: boolean): Promise<GcResult> {
    return this.request('POST', '/v1/registry/gc', { dryRun });
  }

  /** The token this client uses, as the API sees it. */
  currentToken(): Promise<{ token: TokenView }> {
    return this.request('GET', '/v1/tokens/current');
  }

  /** Shared and dedicated addresses, filtered. */
  listIps(filter: { family?: 'ipv4' | 'ipv6' | undefined; shared?: boolean | undefined; app?: string | undefined }): Promise<{ ips: IpView[]; pools: PoolView[] }> {
    const q = new URLSearchParams();
    if (filter.family) q.set('family', filter.family);
    if (filter.shared !== undefined) q.set('shared', String(filter.shared));
    if (filter.app) q.set('app', filter.app);
    return this.request('GET', `/v1/ips${q.size ? `?${q}` : ''}`);
  }

  /** Idempotent on the server: an app's second allocation of a family answers its first. */
  allocateIp(app: string, family: 'ipv4' | 'ipv6'): Promise<{ ip: IpView; created: boolean }> {
    return this.request('POST', '/v1/ips', { app, family });
  }

  describeIp(address: string): Promise<{ ip: IpView & { endpoints: { app: string; port: number }[] } }> {
    return this.request('GET', `/v1/ips/${encodeURIComponent(address)}`);
  }

  releaseIp(address: string): Promise<{ ip: IpView }> {
    return this.request('DELETE', `/v1/ips/${encodeURIComponent(address)}`);
  }

  addCertificate(app: string, cert: string, key: string): Promise<{ certificate: CertificateView }> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/certs`, { cert, key });
  }

  listCertificates(app: string): Promise<{ certificates: CertificateView[] }> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/certs`);
  }

  describeCertificate(id: string): Promise<{ certificate: CertificateView & { chain: string } }> {
    return this.request('GET', `/v1/certs/${encodeURIComponent(id)}`);
  }

  removeCertificate(id: string): Promise<{ certificate: CertificateView }> {
    return this.request('DELETE', `/v1/certs/${encodeURIComponent(id)}`);
  }

  /** The edges that reported to the API, live or not, and the API's current snapshot version. */
  edges(): Promise<{ edges: EdgeView[]; snapshotVersion: number }> {
    return this.request('GET', '/v1/edges');
  }

  nodes(): Promise<{ nodes: NodeView[] }> {
    return this.request('GET', '/v1/nodes');
  }

  node(ref: string): Promise<{ node: NodeView }> {
    return this.request('GET', `/v1/nodes/${encodeURIComponent(ref)}`);
  }

  /** Drain or activate a node; doing it twice changes nothing more. */
  setNodeAvailability(ref: string, action: 'drain' | 'activate'): Promise<{ node: NodeView }> {
    const node = encodeURIComponent(ref);
    return this.request('POST', action === 'drain' ? `/v1/nodes/${node}/drain` : `/v1/nodes/${node}/activate`);
  }

  /** GET a describe document: its shape is documented in docs/api.md. */
  describe(path: string): Promise<Record<string, unknown>> {
    return this.request('GET', path);
  }

  deployment(id: string): Promise<DeploymentView> {
    return this.request('GET', `/v1/deployments/${encodeURIComponent(id)}`);
  }

  /** `app` is a name (the live app, or with `deleted` the last deleted one) or an app id. */
  events(app: string, query: { after?: number; deployment?: string; deleted?: boolean } = {}): Promise<{ events: EventView[] }> {
    const q = new URLSearchParams();
    if (query.after !== undefined) q.set('after', String(query.after));
    if (query.deployment) q.set('deployment', query.deployment);
    if (query.deleted) q.set('deleted', 'true');
    const qs = q.size ? `?${q}` : '';
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/events${qs}`);
  }

  /** Every event the token may see (`GET /v1/events`), one page after `after`. */
  allEvents(query: EventsQuery & { after?: number | undefined; limit?: number | undefined }): Promise<{ events: EventView[] }> {
    const q = eventsQueryString(query);
    if (query.after !== undefined) q.set('after', String(query.after));
    if (query.limit !== undefined) q.set('limit', String(query.limit));
    return this.request('GET', `/v1/events${q.size ? `?${q}` : ''}`);
  }

  /** Follows `GET /v1/events/stream` from `after` (exclusive) until the signal aborts. */
  followAllEvents(query: EventsQuery, after: number | undefined, signal: AbortSignal): AsyncGenerator<EventView> {
    const q = eventsQueryString(query);
    return this.followStream(`/v1/events/stream${q.size ? `?${q}` : ''}`, after, signal);
  }

  /** The app's newest instances, stopped ones included (one page of `limit`). */
  async instances(app: string, limit: number): Promise<InstanceView[]> {
    const body: { instances: InstanceView[] } = await this.request('GET', `/v1/apps/${encodeURIComponent(app)}/instances?limit=${limit}`);
    return body.instances;
  }

  /** The newest events of one type (the last page; bounded: 20 pages of 1000 are read at most). */
  async latestEvents(app: string, type: string): Promise<{ events: EventView[] }> {
    let last: EventView[] = [];
    let after: number | undefined;
    for (let page = 0; page < 20; page++) {
      const q = new URLSearchParams({ type, limit: '1000' });
      if (after !== undefined) q.set('after', String(after));
      const { events }: { events: EventView[] } = await this.request('GET', `/v1/apps/${encodeURIComponent(app)}/events?${q}`);
      if (events.length === 0) break;
      last = events;
      after = events.at(-1)?.id;
      if (events.length < 1000) break;
    }
    return { events: last };
  }

  /** Follows the app's live event stream from `after` (exclusive) until the signal aborts. */
  followEvents(app: string, after: number | undefined, signal: AbortSignal): AsyncGenerator<EventView> {
    return this.followStream(`/v1/apps/${encodeURIComponent(app)}/events/stream`, after, signal);
  }

  private async *followStream(path: string, after: number | undefined, signal: AbortSignal): AsyncGenerator<EventView> {
    const res = await this.send('GET', path, undefined, {
      accept: 'text/event-stream',
      ...(after === undefined ? {} : { 'last-event-id': String(after) }),
    }, signal);
    if (!res.ok || !res.body) {
      await this.parse(res);
      return;
    }
    const messages = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    for await (const msg of messages as unknown as AsyncIterable<EventSourceMessage>) {
      if (msg.event === 'ping') continue;
      yield JSON.parse(msg.data) as EventView;
    }
  }

  logs(app: string, query: LogsQuery): Promise<{ lines: LogLineView[] }> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/logs${logsQueryString(query, false)}`);
  }

  /** New lines as the server sends them (newline-delimited JSON), until the signal aborts. */
  async *followLogs(app: string, query: LogsQuery, signal?: AbortSignal): AsyncGenerator<LogLineView> {
    const res = await this.send('GET', `/v1/apps/${encodeURIComponent(app)}/logs${logsQueryString(query, true)}`, undefined, {}, signal);
    if (!res.ok || !res.body) {
      await this.parse(res);
      return;
    }
    yield* ndjson<LogLineView>(res.body);
  }

  /** Uploads a build context (a tar stream) and yields the build's output and outcome as they come. */
  async *build(query: BuildQuery, context: Readable): AsyncGenerator<BuildEvent> {
    const q = new URLSearchParams({ app: query.app, dockerfile: query.dockerfile });
    if (query.target) q.set('target', query.target);
    for (const [name, value] of Object.entries(query.args)) q.append('arg', `${name}=${value}`);
    let res: Response;
    try {
      res = await apiFetch(this.config, `${this.config.apiUrl}/v1/builds?${q}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.config.token}`, 'content-type': 'application/x-tar', ...(this.config.environment ? { 'pier-env': this.config.environment } : {}) },
        body: Readable.toWeb(context) as ReadableStream<Uint8Array>,
        duplex: 'half',
      } as RequestInit);
    } catch (err) {
      if (err instanceof CliError) throw err;
      // The server closes the upload when it refuses it; its answer is then lost with the socket.
      throw new CliError('E_API_UNREACHABLE', `cannot upload the build context to ${this.config.apiUrl}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, {
        hint: 'check that the server runs (`pier server`) and that the context is below its limit (--build-context-limit)',
        cause: err,
      });
    }
    if (!res.ok || !res.body || !res.headers.get('content-type')?.includes('ndjson')) {
      await this.parse(res);
      return;
    }
    yield* ndjson<BuildEvent>(res.body);
  }

  exec(app: string, instance: string, body: { cmd: string[]; timeoutMs?: number }): Promise<ExecResultView> {
    return this.request('POST', `/v1/apps/${encodeURIComponent(app)}/instances/${encodeURIComponent(instance)}/exec`, body);
  }

  /** An interactive session over a WebSocket (see cli/exec-socket.ts for the protocol). */
  execSocket(app: string, instance: string, options: { cmd: string[]; cols: number; rows: number; onOutput: (data: Buffer) => void }): Promise<ExecSocket> {
    const q = new URLSearchParams();
    for (const arg of options.cmd) q.append('cmd', arg);
    q.set('cols', String(options.cols));
    q.set('rows', String(options.rows));
    const url = `${this.config.apiUrl.replace(/^http/, 'ws')}/v1/apps/${encodeURIComponent(app)}/instances/${encodeURIComponent(instance)}/exec/ws?${q}`;
    return openExecSocket(url, this.config.token, options.onOutput, apiSocketOptions(this.config));
  }

  // Tunnels (api/routes/connect.ts): where one would go (checks the token's right), and one tunnel.
  tunnelTarget(app: string, query: { port: number; instance?: string | undefined }): Promise<TunnelTargetView> {
    return this.request('GET', `${appPath(app)}/connect?${tunnelQuery(query)}`);
  }

  openTunnel(app: string, query: { port: number; instance?: string | undefined; kind: 'port-forward' | 'connect'; idleTimeout?: number | undefined }): Promise<WebSocket> {
    const url = `${this.config.apiUrl.replace(/^http/, 'ws')}${appPath(app)}/connect/ws?${tunnelQuery(query)}`;
    return openTunnelSocket(url, this.config.token, apiSocketOptions(this.config));
  }

  // Volumes and snapshots (api/routes/volumes.ts).
  listVolumes(app: string, deleted: boolean): Promise<{ volumes: VolumeView[] }> {
    return this.request('GET', `${appPath(app)}/volumes${deleted ? '?deleted=true' : ''}`);
  }

  createVolume(app: string, body: { name: string; size?: string | undefined; root?: string | undefined }): Promise<{ volume: VolumeView }> {
    return this.request('POST', `${appPath(app)}/volumes`, body);
  }

  describeVolume(app: string, name: string): Promise<VolumeDescription> {
    return this.request('GET', `${appPath(app)}/volumes/${encodeURIComponent(name)}`);
  }

  deleteVolume(app: string, name: string): Promise<{ volume: VolumeView; finalSnapshot: SnapshotView }> {
    return this.request('DELETE', `${appPath(app)}/volumes/${encodeURIComponent(name)}`);
  }

  undeleteVolume(app: string, name: string): Promise<{ volume: VolumeView }> {
    return this.request('POST', `${appPath(app)}/volumes/${encodeURIComponent(name)}/undelete`, {});
  }

  snapshotVolume(app: string, name: string): Promise<{ snapshot: SnapshotView }> {
    return this.request('POST', `${appPath(app)}/volumes/${encodeURIComponent(name)}/snapshots`, {});
  }

  moveVolume(app: string, name: string, to: string, group = false): Promise<{ volume: VolumeView; move: MoveView; group: { volume: VolumeView; move: MoveView }[] }> {
    return this.request('POST', `${appPath(app)}/volumes/${encodeURIComponent(name)}/move`, group ? { to, group } : { to });
  }

  listSnapshots(app: string, volume?: string): Promise<{ snapshots: SnapshotView[] }> {
    return this.request('GET', `${appPath(app)}/snapshots${volume ? `?volume=${encodeURIComponent(volume)}` : ''}`);
  }

  describeSnapshot(app: string, id: string): Promise<{ snapshot: SnapshotView }> {
    return this.request('GET', `${appPath(app)}/snapshots/${encodeURIComponent(id)}`);
  }

  deleteSnapshot(app: string, id: string): Promise<{ snapshot: SnapshotView }> {
    return this.request('DELETE', `${appPath(app)}/snapshots/${encodeURIComponent(id)}`);
  }

  restoreSnapshot(app: string, id: string, body: { inPlace: boolean; name?: string | undefined }): Promise<{ volume: VolumeView; preRestoreSnapshot: SnapshotView | null }> {
    return this.request('POST', `${appPath(app)}/snapshots/${encodeURIComponent(id)}/restore`, body);
  }

  /** Streams a snapshot's export file into `file` (written beside, then renamed: no half file under that name). */
  async exportSnapshot(app: string, id: string, file: string): Promise<{ bytes: number }> {
    const res = await this.send('GET', `${appPath(app)}/snapshots/${encodeURIComponent(id)}/export`);
    if (!res.ok || !res.body) return this.parse(res);
    const partial = `${file}.partial`;
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), count, createWriteStream(partial));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw new CliError('E_EXPORT_FAILED', `the export of ${id} did not complete: ${(err as Error).message}`, { hint: 'run it again; nothing was written to the file', cause: err });
    }
    return { bytes };
  }

  /** Sends a file made by exportSnapshot, into the storage root `root` (the server's default without it); the server checks it before it keeps anything. */
  async importSnapshot(app: string, file: string, root?: string): Promise<{ snapshot: SnapshotView }> {
    const size = (await stat(file)).size;
    const body = Readable.toWeb(createReadStream(file)) as ReadableStream;
    let res: Response;
    try {
      const query = root === undefined ? '' : `?root=${encodeURIComponent(root)}`;
      res = await apiFetch(this.config, `${this.config.apiUrl}${appPath(app)}/snapshots/import${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.config.token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body,
        duplex: 'half',
      } as RequestInit);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError('E_API_UNREACHABLE', `cannot reach the Pier API at ${this.config.apiUrl}`, { hint: 'start it with `pier server`, or set PIER_API_URL', cause: err });
    }
    return this.parse(res);
  }

  /** Any JSON route (the environment and secret commands use it): the answer, or the API's error as a CliError. */
  call<T>(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<T> {
    return this.request(method, path, body, idempotencyKey);
  }

  private async request<T>(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<T> {
    return this.parse<T>(await this.send(method, path, body, idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}));
  }

  /** Follows `next_cursor` through every page of a list (bounded: 1000 pages). */
  private async all<T>(path: string, key: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const body: Record<string, unknown> = await this.request('GET', cursor ? `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}` : path);
      items.push(...((body[key] as T[] | undefined) ?? []));
      cursor = typeof body.next_cursor === 'string' ? body.next_cursor : null;
      if (!cursor) break;
    }
    return items;
  }

  private async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await apiFetch(this.config, `${this.config.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.config.token}`,
          ...(this.config.environment ? { 'pier-env': this.config.environment } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? null : JSON.stringify(body),
        signal: signal ?? null,
      });
    } catch (err) {
      // A certificate that failed its check says so itself.
      if (err instanceof CliError) throw err;
      throw new CliError('E_API_UNREACHABLE', `cannot reach the Pier API at ${this.config.apiUrl}`, {
        hint: 'start it with `pier server`, or set PIER_API_URL',
        cause: err,
      });
    }
    return res;
  }

  private async parse<T>(res: Response): Promise<T> {
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new CliError('E_API_RESPONSE', `the API answered ${res.status} with a body that is not JSON`, { hint: `is ${this.config.apiUrl} a Pier API?` });
    }
    if (!res.ok) {
      const e = (parsed as Partial<ErrorBody>).error;
      const code = e?.code ?? `E_HTTP_${res.status}`;
      throw new CliError(code, e?.message ?? `the API answered ${res.status}`, {
        hint: e?.hint,
        details: e?.details,
        exitCode: exitCodeForApiError(code, res.status),
      });
    }
    return parsed as T;
  }
}

function tunnelQuery(query: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) q.set(key, String(value));
  return q.toString();
}

function appPath(app: string): string {
  return `/v1/apps/${encodeURIComponent(app)}`;
}

function logsQueryString(query: LogsQuery, follow: boolean): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') q.set(key, String(value));
  if (follow) q.set('follow', '1');
  return q.size ? `?${q}` : '';
}

/** Newline-delimited JSON as it arrives: one value per line, a last line without its newline too. */
async function* ndjson<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const part of parts) if (part.trim() !== '') yield JSON.parse(part) as T;
  }
  if (buffered.trim() !== '') yield JSON.parse(buffered) as T;
}

/** Filters of GET /v1/events and its stream. */
export interface EventsQuery {
  app?: string | undefined;
  type?: string | undefined;
  /** ISO 8601 time. */
  since?: string | undefined;
  system?: boolean | undefined;
}

function eventsQueryString(query: EventsQuery): URLSearchParams {
  const q = new URLSearchParams();
  if (query.app) q.set('app', query.app);
  if (query.type) q.set('type', query.type);
  if (query.since) q.set('since', query.since);
  if (query.system) q.set('system', 'true');
  return q;
}
