// What a token may hold: it travels in an HTTP header (`Authorization: Bearer …`), so only visible
// ASCII, no spaces. Anything else is a token pasted with a stray character, and says so, rather
// than failing later as if the API could not be reached.
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

/** Returns the token, or throws E_TOKEN_INVALID (exit 4) naming where it came from and what is wrong. */
export function checkToken(token: string, source: string): string {
  const bad = /[^\x21-\x7e]/.exec(token);
  if (!bad) return token;
  const code = bad[0].codePointAt(0) ?? 0;
  const what = code === 0x20 ? 'a space' : code < 0x20 || code === 0x7f ? 'a control character' : 'a character outside ASCII';
  throw new CliError('E_TOKEN_INVALID', `the API token from ${source} holds ${what} (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${bad.index + 1}, which a token cannot hold`, {
    hint: 'tokens are one word of letters, digits and _-, e.g. pier_…; copy it again (without quotes or line breaks) or make a new one with `pier tokens create`',
    exitCode: EXIT.auth,
  });
}
