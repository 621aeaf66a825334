// Exit codes, decided here and nowhere else (docs/cli.md lists them).
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  deployFailed: 3,
  auth: 4,
  /** `pier env diff`: the environments differ beyond what their [env.*] overrides declare. */
  drift: 5,
  /** The command gave up waiting; the work goes on on the server. */
  pending: 8,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Server-side conditions that pass: the command may simply be run again (the API's hint says so). */
export const RETRYABLE_API_ERRORS: ReadonlySet<string> = new Set(['E_DATABASE_UNAVAILABLE', 'E_RUNTIME_UNAVAILABLE', 'E_NOT_READY']);

/** A build that ran and failed, or could not start for what the context holds: the deploy failed (3). */
export const BUILD_FAILURES: ReadonlySet<string> = new Set(['E_BUILD_FAILED', 'E_BUILD_DOCKERFILE_MISSING', 'E_BUILD_DOCKERFILE_INVALID', 'E_BUILD_BASE_IMAGE_NOT_FOUND']);

/** Maps an API error code to the CLI's exit code. */
export function exitCodeForApiError(code: string, status: number): ExitCode {
  // A retryable outage is an error (1), never a usage problem or a conflict, whatever its status.
  if (RETRYABLE_API_ERRORS.has(code)) return EXIT.error;
  if (BUILD_FAILURES.has(code)) return EXIT.deployFailed;
  if (status === 401 || status === 403) return EXIT.auth;
  if (code === 'E_MANIFEST_INVALID' || code === 'E_BAD_REQUEST') return EXIT.usage;
  return EXIT.error;
}
