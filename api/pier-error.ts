// The one error type of the control plane: a stable code, an HTTP status, a message that says
// what happened and a hint that says what to do. api/app.ts turns it into the JSON error shape.

export interface PierErrorOptions {
  status?: number;
  hint?: string;
  cause?: unknown;
  /** Structured detail for clients, e.g. the list of manifest problems. */
  details?: unknown;
}

export class PierError extends Error {
  readonly code: string;
  readonly status: number;
  readonly hint: string | undefined;
  readonly details: unknown;

  constructor(code: string, message: string, options: PierErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PierError';
    this.code = code;
    this.status = options.status ?? 500;
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isPierError(err: unknown): err is PierError {
  return err instanceof PierError;
}
