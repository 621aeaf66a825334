// The CLI's one error type: a stable code, a message, a hint, and the exit code it ends with.
import { EXIT, type ExitCode } from './exit-codes.js';

export class CliError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly details: unknown;

  constructor(code: string, message: string, options: { hint?: string | undefined; exitCode?: ExitCode; details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? EXIT.error;
    this.details = options.details;
  }
}
