// The token shared by the API server and its node agents: read from a file (--token-file on the
// agent, --node-agent-token-file on the server) or PIER_AGENT_TOKEN, never from the command line,
// where `ps` shows it to every user of the host. One header word (visible ASCII), at least 16
// characters: make one with `openssl rand -hex 32`.
import { readFileSync } from 'node:fs';
import { PierError } from '../pier-error.js';

const HINT = 'put one line made by `openssl rand -hex 32` in a file only this user can read, and pass the file (or set PIER_AGENT_TOKEN)';

export function readAgentToken(file: string | undefined, env: string | undefined, flag: string): string | undefined {
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PierError('E_CONFIG_INVALID', `cannot read the agent token file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : ((err as NodeJS.ErrnoException).code ?? 'unreadable')}`, { status: 400, hint: HINT });
    }
    return checkAgentToken(text.trim(), `the file ${file} (${flag})`);
  }
  return env ? checkAgentToken(env.trim(), 'PIER_AGENT_TOKEN') : undefined;
}

function checkAgentToken(token: string, source: string): string {
  if (token.length < 16 || /[^\x21-\x7e]/.test(token)) {
    throw new PierError('E_CONFIG_INVALID', `the agent token from ${source} is ${token.length < 16 ? `${token.length} characters long, below the 16 a token needs` : 'not one word of visible ASCII characters'}`, { status: 400, hint: HINT });
  }
  return token;
}
