// One health probe of one instance: a TCP connect, an HTTP GET, a command in the container, or
// the implicit readiness check (a connect to each endpoint's target port). TCP and HTTP reach the
// container at its address on Pier's network, through the runtime, never a published port: what
// answers is the process itself. Each returns whether it passed and a one-line output.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ConnectOptions } from '../runtime/runtime.js';
import type { ListenCheck, ProcessCheck } from './readiness-check.js';

export interface ProbeTarget {
  /** The instance, named in the implicit check's output. */
  instanceId: string;
  /** The container's address on Pier's network, or null when it has none (not running). */
  address: string | null;
  containerId: string;
}

export interface ProbeResult {
  ok: boolean;
  output: string;
}

/** Runs a command in a container; provided by the runtime. */
export type ExecFn = (containerId: string, cmd: string[], timeoutMs: number) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

/** Opens a TCP connection to a container's address; provided by the runtime. */
export type ConnectFn = (address: string, port: number, options: ConnectOptions) => Promise<Duplex>;

export interface ProbeDeps {
  exec: ExecFn;
  connect: ConnectFn;
}

export async function probe(check: ProcessCheck, target: ProbeTarget, deps: ProbeDeps): Promise<ProbeResult> {
  const name = describeCheck(check);
  try {
    switch (check.type) {
      case 'listen':
        return await listenProbe(check, target, deps);
      case 'tcp': {
        if (!target.address) return { ok: false, output: `${name}: the container has no address on Pier's network` };
        (await deps.connect(target.address, check.port as number, { timeoutMs: check.timeout })).destroy();
        return { ok: true, output: `${name}: connected` };
      }
      case 'http':
        return await httpProbe(name, check, target, deps);
      case 'exec': {
        const r = await deps.exec(target.containerId, check.command ?? [], check.timeout);
        const out = (r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ').slice(0, 300);
        return { ok: r.exitCode === 0, output: `${name}: exit code ${r.exitCode}${out ? `: ${out}` : ''}` };
      }
    }
  } catch (err) {
    return { ok: false, output: `${name}: ${errorWords(err, check.timeout)}` };
  }
}

export function describeCheck(check: ProcessCheck): string {
  if (check.type === 'listen') return `readiness (implicit) tcp ${check.targets.map((t) => `:${t.port}`).join(' ')}`;
  if (check.type === 'http') return `check http :${check.port}${check.path}`;
  if (check.type === 'tcp') return `check tcp :${check.port}`;
  return `check exec ${JSON.stringify(check.command)}`;
}

/** Every target port must accept a connection; the first that does not is the output. */
async function listenProbe(check: ListenCheck, target: ProbeTarget, deps: ProbeDeps): Promise<ProbeResult> {
  for (const t of check.targets) {
    const why = t.endpoints.length ? `${t.endpoints.map((p) => `endpoint :${p}`).join(', ')} ${t.endpoints.length > 1 ? 'target' : 'targets'} it` : 'offered in [[private]]';
    const where = `port ${t.port} in ${target.instanceId} (${why})`;
    if (!target.address) return { ok: false, output: `nothing listens on ${where}: the container has no address on Pier's network` };
    try {
      (await deps.connect(target.address, t.port, { timeoutMs: check.timeout })).destroy();
    } catch (err) {
      return { ok: false, output: `nothing listens on ${where}: ${errorWords(err, check.timeout)}` };
    }
  }
  return { ok: true, output: `listening on ${check.targets.map((t) => `:${t.port}`).join(', ')}` };
}

async function httpProbe(name: string, check: Exclude<ProcessCheck, ListenCheck>, target: ProbeTarget, deps: ProbeDeps): Promise<ProbeResult> {
  if (!target.address) return { ok: false, output: `${name}: the container has no address on Pier's network` };
  const address = target.address;
  const port = check.port as number;
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: address.includes(':') ? `[${address}]` : address,
        port,
        path: check.path,
        method: 'GET',
        headers: { 'user-agent': 'pier-health-check', connection: 'close' },
        signal: AbortSignal.timeout(check.timeout),
        // The connection comes from the runtime: the container's own address, no published port.
        createConnection: (_opts: unknown, done: (err: Error | null, socket?: Duplex) => void) => {
          deps.connect(address, port, { timeoutMs: check.timeout }).then(
            (socket) => done(null, socket),
            (err: Error) => done(err),
          );
          return undefined;
        },
      } as http.RequestOptions,
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 4096) text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
  const short = body.trim().replace(/\s+/g, ' ').slice(0, 200);
  const ok = check.status !== undefined ? status === check.status : status >= 200 && status < 400;
  const expected = check.status !== undefined ? ` (expected ${check.status})` : '';
  return { ok, output: `${name}: HTTP ${status}${ok ? '' : expected}${short ? `: ${short}` : ''}` };
}

/** ECONNREFUSED, ETIMEDOUT, "no answer within 2000 ms": the words of a failed connect or request. */
function errorWords(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return `no answer within ${timeoutMs} ms`;
  return e?.code ?? e?.cause?.code ?? (e instanceof Error ? e.message : String(err));
}
