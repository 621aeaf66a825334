// Docker's image reference grammar (distribution's `reference` package, the one the engine
// parses with): `[host[:port]/]path[:tag][@algorithm:hex]`, or a bare image id `sha256:<64 hex>`.
// Checked before the reference goes anywhere near the engine, so a value such as `x;rm -rf /`
// is a 422 naming the field rather than an engine error.

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|-+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const host = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])`;
const domain = `${host}(?::[0-9]+)?`;
const name = `(?:${domain}/)?${pathComponent}(?:/${pathComponent})*`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const REFERENCE = new RegExp(`^(${name})(?::${tag})?(?:@${digest})?$`);
const PATH_ONLY = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
/** The engine refuses longer names (the part before `:tag` / `@digest`). */
const MAX_NAME_LENGTH = 255;

/** Why `value` is not an image reference the engine accepts, or null when it is one. */
export function imageReferenceProblem(value: string): string | null {
  if (IMAGE_ID.test(value)) return null;
  const m = REFERENCE.exec(value);
  if (!m) {
    const upper = /[A-Z]/.test(value) && REFERENCE.test(value.toLowerCase());
    return upper
      ? 'must be an image reference with a lowercase repository name, e.g. "local/echo:1"'
      : 'must be an image reference such as "local/echo:1", "registry.example.com:5000/team/app:v2" or "app@sha256:<hex>" (letters, digits and . _ - / : @ only)';
  }
  const name = m[1] ?? '';
  if (name.length > MAX_NAME_LENGTH) return `must have a repository name of at most ${MAX_NAME_LENGTH} characters`;
  // The first part is a registry host only when it looks like one (a dot, a port, or
  // "localhost"); otherwise the engine reads it as part of the repository path, which is lowercase.
  const first = name.split('/')[0] ?? '';
  if (name.includes('/') && !/[.:]/.test(first) && first !== 'localhost' && !PATH_ONLY.test(name)) {
    return 'must be an image reference with a lowercase repository name, e.g. "local/echo:1"';
  }
  return null;
}
