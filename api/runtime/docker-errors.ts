// How Docker engine failures read: connection problems become E_RUNTIME_UNAVAILABLE, anything
// else keeps Docker's own words; shared by the runtime's files (containers, logs, exec).

import { PierError } from '../pier-error.js';

const CONNECTION_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export interface EngineErrors {
  unavailable(cause?: unknown): PierError;
  /** Connection failures read the same everywhere; anything else keeps Docker's own words. */
  engineError(err: unknown, action: string): PierError;
}

export function createEngineErrors(socketPath: string): EngineErrors {
  const unavailable = (cause?: unknown): PierError =>
    new PierError('E_RUNTIME_UNAVAILABLE', `Docker is not reachable at ${socketPath}`, {
      status: 503,
      hint: 'start the engine (`sudo systemctl start docker`, or `sudo dockerd &`) or point Pier at the right socket',
      cause,
    });
  return {
    unavailable,
    engineError(err, action) {
      if (err instanceof PierError) return err;
      if (isConnectionError(err)) return unavailable(err);
      return new PierError('E_RUNTIME', `docker ${action} failed: ${dockerMessage(err)}`, { cause: err });
    },
  };
}

export function containerNotFound(id: string, cause?: unknown): PierError {
  return new PierError('E_CONTAINER_NOT_FOUND', `container ${id} does not exist`, { status: 404, cause });
}

export function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code);
}

/**
 * The engine's words when it could not reach its containerd: dockerd answers an exec start it
 * could not carry out with the error as the command's output and exit code 126 (the process never
 * started). While dockerd shuts down or its containerd restarts, that error is a gRPC one.
 */
const ENGINE_LOST = /^(?:grpc: the client connection is closing|rpc error: code = (?:Unavailable|Canceled)\b|.*\btransport is closing\b|.*containerd\.sock: connect: )/;

export function engineLost(message: string): boolean {
  return ENGINE_LOST.test(message.trim());
}

/** Docker's own message ({"message": …}) without dockerode's "(HTTP code 400) unexpected - " prefix. */
export function dockerMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && 'message' in json && typeof json.message === 'string') return json.message;
  if (Buffer.isBuffer(json) && json.length > 0) return json.toString('utf8').trim();
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}
