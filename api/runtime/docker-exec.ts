// Commands run inside a running container through Docker's exec API: one-shot (demultiplexed,
// capped output and the exit code) and interactive (a TTY attached both ways, resizable).

import type Docker from 'dockerode';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { PierError } from '../pier-error.js';
import { containerNotFound, dockerMessage, engineLost, statusOf, type EngineErrors } from './docker-errors.js';
import { FrameDecoder } from './docker-log-frames.js';
import { EXEC_OUTPUT_LIMIT, type ExecOptions, type ExecResult, type ExecSession, type Runtime } from './runtime.js';

const DEFAULT_TIMEOUT_MS = 60_000;

export function createDockerExec(docker: Docker, errors: EngineErrors): Pick<Runtime, 'exec' | 'execInteractive'> {
  /** The engine answers 409 for a container that is stopped, paused, restarting or being removed. */
  const failure = (err: unknown, id: string, action: string): PierError => {
    const status = statusOf(err);
    if (status === 404) return containerNotFound(id, err);
    if (status === 409) return new PierError('E_CONTAINER_NOT_RUNNING', `container ${id} is not running: ${dockerMessage(err)}`, { status: 409, cause: err });
    return errors.engineError(err, `${action} in ${id}`);
  };

  async function create(id: string, options: Docker.ExecCreateOptions): Promise<Docker.Exec> {
    try {
      return await docker.getContainer(id).exec(options);
    } catch (err) {
      throw failure(err, id, 'exec');
    }
  }

  async function start(exec: Docker.Exec, id: string, options: Docker.ExecStartOptions): Promise<Duplex> {
    try {
      return (await exec.start({ hijack: true, ...options })) as Duplex;
    } catch (err) {
      throw failure(err, id, 'exec start');
    }
  }

  /** The engine may still report the process running for a moment after its output ended. */
  async function ended(exec: Docker.Exec, id: string): Promise<ExecEnd> {
    for (let i = 0; i < 100; i++) {
      let info: Docker.ExecInspectInfo;
      try {
        info = await exec.inspect();
      } catch (err) {
        throw errors.engineError(err, `exec inspect in ${id}`);
      }
      if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, pid: info.Pid };
      await delay(20);
    }
    return { exitCode: -1, pid: -1 };
  }

  return {
    async exec(id: string, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
      const exec = await create(id, { Cmd: cmd, AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false });
      const stream = await start(exec, id, { stdin: false });
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        stream.destroy();
      }, timeoutMs);
      const onAbort = (): void => void stream.destroy();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const out = { stdout: new CappedBuffer(EXEC_OUTPUT_LIMIT), stderr: new CappedBuffer(EXEC_OUTPUT_LIMIT) };
      const decoder = new FrameDecoder();
      try {
        for await (const chunk of stream) {
          for (const frame of decoder.push(chunk as Buffer)) out[frame.stream].add(frame.payload);
        }
        for (const frame of decoder.end()) out[frame.stream].add(frame.payload);
      } catch (err) {
        // A destroyed stream (timeout, abort) may end with an error or quietly; both are handled below.
        if (!timedOut && !options.signal?.aborted) throw errors.engineError(err, `exec in ${id}`);
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      }
      if (timedOut) {
        throw new PierError('E_EXEC_TIMEOUT', `the command did not finish within ${timeoutMs} ms`, {
          status: 504,
          hint: 'it may still be running in the container; raise timeoutMs, or use an interactive session (pier exec -it)',
        });
      }
      if (options.signal?.aborted) throw new PierError('E_EXEC_ABORTED', 'the exec was cancelled', { status: 499 });
      const end = await ended(exec, id);
      const stdout = out.stdout.text();
      const lost = engineFailure(end, stdout, errors);
      if (lost) throw lost;
      return { exitCode: end.exitCode, stdout, stderr: out.stderr.text(), truncated: out.stdout.truncated || out.stderr.truncated };
    },

    async execInteractive(id: string, cmd: string[], options: { tty: true; cols: number; rows: number }): Promise<ExecSession> {
      const exec = await create(id, { Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Env: ['TERM=xterm'] });
      const stream = await start(exec, id, { stdin: true, Tty: true });
      const resize = async (cols: number, rows: number): Promise<void> => {
        try {
          await exec.resize({ w: cols, h: rows });
        } catch (err) {
          // A resize racing the process's exit is not worth failing the session for.
          if (statusOf(err) !== 404 && statusOf(err) !== 500) throw errors.engineError(err, `exec resize in ${id}`);
        }
      };
      await resize(options.cols, options.rows);
      const closed = stream.closed ? Promise.resolve() : once(stream, 'close').then(() => undefined, () => undefined);
      return {
        stream,
        resize,
        async wait() {
          await closed;
          return (await ended(exec, id)).exitCode;
        },
        close: () => void stream.destroy(),
      };
    },
  };
}

/** How an exec ended: its exit code, and the pid its process had (0: it never started). */
export interface ExecEnd {
  exitCode: number;
  pid: number;
}

/**
 * An exec whose process never started (pid 0) because the engine lost its containerd (dockerd
 * stopping, containerd restarting) is the engine being unavailable, not the command's answer:
 * dockerd reports it as exit code 126 with its gRPC error as the output. Any other start failure
 * (a missing executable) keeps Docker's exit code and words, as `docker exec` shows them.
 */
export function engineFailure(end: ExecEnd, stdout: string, errors: EngineErrors): PierError | null {
  if (end.pid !== 0 || end.exitCode === 0 || !engineLost(stdout)) return null;
  return errors.unavailable(new Error(`the command did not start: ${stdout.trim().slice(0, 300)}`));
}

/** Keeps the first `limit` bytes and remembers whether more came. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    // Copied, so a small frame does not keep the larger chunk it arrived in alive.
    this.chunks.push(Buffer.from(kept));
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
