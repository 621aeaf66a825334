// Environment names and how a request names its environment: the `Pier-Env` header (the CLI's
// `--env`), production when absent. A token bound to environments (`pr-*`) is refused in any
// other one, here, before a route runs, so no route can forget the check.
import { DEFAULT_ENVIRONMENT } from '../db/schema/index.js';
import { PierError } from './pier-error.js';

export const ENVIRONMENT_HEADER = 'pier-env';

const NAME = /^[a-z][a-z0-9-]{0,39}$/;
/** Environments that are persistent by name: created on first deploy as such, never as previews. */
export const PERSISTENT_NAMES = new Set(['production', 'staging']);

export function checkEnvironmentName(name: string, what = 'environment'): string {
  if (!NAME.test(name)) {
    throw new PierError('E_BAD_ENVIRONMENT', `"${name.slice(0, 60)}" is not a valid ${what} name`, {
      status: 400,
      hint: 'an environment name starts with a letter and holds only a-z, 0-9 and "-" (at most 40 characters), e.g. pr-42',
    });
  }
  return name;
}

/** A token's environment pattern: names and `*` wildcards, comma-separated (`pr-*,staging`). */
export function checkEnvironmentPattern(pattern: string): string {
  const parts = pattern.split(',');
  if (parts.some((p) => !/^[a-z*][a-z0-9*-]{0,39}$/.test(p))) {
    throw new PierError('E_BAD_ENVIRONMENT', `"${pattern.slice(0, 60)}" is not an environment pattern`, {
      status: 400,
      hint: 'use names and "*" wildcards, comma-separated, e.g. --env "pr-*" or --env "pr-*,staging"',
    });
  }
  return pattern;
}

export function matchesPattern(name: string, pattern: string | null | undefined): boolean {
  if (!pattern) return true;
  return pattern.split(',').some((p) => new RegExp(`^${p.replace(/[-]/g, '\\-').replace(/\*/g, '[a-z0-9-]*')}$`).test(name));
}

/** A token's pattern as SQL LIKE patterns (`pr-*` → `pr-%`); names hold no LIKE wildcards. */
export function likePatterns(pattern: string): string[] {
  return pattern.split(',').map((p) => p.replace(/\*/g, '%'));
}

/** The request's environment, refused when the token may not act in it. */
export function requestEnvironment(header: string | undefined, pattern: string | null): string {
  const name = header === undefined || header === '' ? DEFAULT_ENVIRONMENT : checkEnvironmentName(header);
  if (!matchesPattern(name, pattern)) throw environmentForbidden(name, pattern ?? '');
  return name;
}

export function environmentForbidden(name: string, pattern: string): PierError {
  return new PierError('E_ENVIRONMENT_FORBIDDEN', `this token is bound to environments "${pattern}" and may not act in "${name}"`, {
    status: 403,
    hint: 'use a token for that environment; `pier tokens create --env PATTERN` makes one',
  });
}

export function environmentOf(auth: { environment?: string | undefined }): string {
  return auth.environment ?? DEFAULT_ENVIRONMENT;
}
