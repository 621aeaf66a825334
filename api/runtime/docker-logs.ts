// A container's logs from the Docker engine: the last lines at once, or a stream of lines that
// follows new ones. Both ask for timestamps and decode the multiplexed body in docker-log-frames.

import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { containerNotFound, statusOf, type EngineErrors } from './docker-errors.js';
import { LogLineDecoder, parseLogFrames } from './docker-log-frames.js';
import type { LogLine, LogStreamOptions } from './runtime.js';

export interface DockerLogs {
  logs(id: string, tail: number): Promise<LogLine[]>;
  streamLogs(id: string, options: LogStreamOptions): AsyncGenerator<LogLine>;
}

export function createDockerLogs(docker: Docker, errors: EngineErrors): DockerLogs {
  const open = async (id: string, query: Record<string, unknown>, signal?: AbortSignal): Promise<Readable> => {
    try {
      // Dialled as a stream: dockerode's buffered mode would JSON.parse a TTY body that looks like JSON.
      return await dial(docker, {
        path: `/containers/${encodeURIComponent(id)}/logs?`,
        method: 'GET',
        isStream: true,
        statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
        options: { stdout: true, stderr: true, timestamps: true, ...query },
        ...(signal ? { abortSignal: signal } : {}),
      });
    } catch (err) {
      if (statusOf(err) === 404) throw containerNotFound(id, err);
      throw errors.engineError(err, `logs of ${id}`);
    }
  };

  return {
    async logs(id, tail) {
      const stream = await open(id, { tail: Math.max(0, Math.floor(tail)) });
      try {
        return parseLogFrames(await readAll(stream));
      } catch (err) {
        throw errors.engineError(err, `logs of ${id}`);
      }
    },

    async *streamLogs(id, options) {
      const { signal } = options;
      if (signal.aborted) return;
      const query: Record<string, unknown> = { follow: options.follow, tail: options.tail === undefined ? 'all' : Math.max(0, Math.floor(options.tail)) };
      if (options.since) query.since = dockerTimestamp(options.since);
      if (options.until && !options.follow) query.until = dockerTimestamp(options.until);
      let stream: Readable;
      try {
        stream = await open(id, query, signal);
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      const onAbort = (): void => void stream.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      const decoder = new LogLineDecoder();
      try {
        for await (const chunk of stream) {
          yield* decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
        }
        yield* decoder.end();
      } catch (err) {
        if (signal.aborted) return;
        throw errors.engineError(err, `logs of ${id}`);
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
    },
  };
}

/** Docker reads `since`/`until` as "seconds.nanoseconds". */
function dockerTimestamp(time: Date): string {
  const ms = time.getTime();
  return `${Math.floor(ms / 1000)}.${String(((ms % 1000) + 1000) % 1000).padStart(3, '0')}000000`;
}

function dial(docker: Docker, options: Parameters<Docker['modem']['dial']>[0]): Promise<Readable> {
  return new Promise((resolve, reject) => {
    docker.modem.dial(options, (err, stream) => (err ? reject(err) : resolve(stream as Readable)));
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}
