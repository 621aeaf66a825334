// `pier admin-token rotate`: a new secret for the admin token `pier server` keeps in
// <data dir>/admin-token, while the server runs. The old secret keeps working for --overlap (60 s
// by default), so a command that read the file just before keeps working; the file is replaced in
// one rename, and the CLI config is updated when it held the old secret.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig, saveClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

const rotate = defineCommand({
  meta: { name: 'rotate', description: "Rotate the admin token in the server's data folder without stopping anything (the old secret works for --overlap)" },
  args: {
    'data-dir': { type: 'string', description: "The server's data folder (default: $PIER_DATA_DIR, else .pier)", valueHint: 'DIR' },
    overlap: { type: 'string', description: 'How long the old secret keeps working: 30s, 5m, 1h', default: '60s', valueHint: 'DURATION' },
    json: { type: 'boolean', description: 'Print { token, file, cliConfig } as JSON (never the secret)', default: false },
  },
  async run({ args }) {
    const file = join(resolve(args['data-dir'] ?? process.env.PIER_DATA_DIR ?? '.pier'), 'admin-token');
    const old = await readFile(file, 'utf8').then(
      (s) => s.trim(),
      (err: NodeJS.ErrnoException) => {
        throw new CliError('E_ADMIN_TOKEN_MISSING', `cannot read ${file}: ${err.code ?? err.message}`, { hint: 'run this on the server host as its user, with --data-dir or PIER_DATA_DIR set as for `pier server`', exitCode: EXIT.usage });
      },
    );
    // The API of this host, with the token from the file (not whatever PIER_TOKEN says).
    const saved = loadClientConfigOrNull();
    const apiUrl = process.env.PIER_API_URL || saved?.apiUrl || 'http://127.0.0.1:7700';
    const client = new ApiClient({ apiUrl: apiUrl.replace(/\/+$/, ''), token: old });
    const { token: me } = await client.currentToken();
    const { token, secret } = await client.rotateToken(me.id, args.overlap);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${secret}\n`, { mode: 0o600 });
    await rename(tmp, file);
    let cliConfig = 'kept';
    if (saved?.token === old && !process.env.PIER_TOKEN) {
      saveClientConfig(process.env, { apiUrl: saved.apiUrl, token: secret });
      cliConfig = 'updated';
    }
    if (args.json) return printJson({ token, file, cliConfig });
    printLine(`rotated ${token.id}: ${file} holds the new secret; the old one works for ${args.overlap}${cliConfig === 'updated' ? '; the CLI config now holds the new one' : ''}`);
  },
});

function loadClientConfigOrNull(): { apiUrl: string; token: string } | null {
  try {
    const { PIER_TOKEN: _ignored, ...env } = process.env;
    return loadClientConfig(env);
  } catch {
    return null;
  }
}

export default defineCommand({
  meta: { name: 'admin-token', description: "The admin token `pier server` keeps in its data folder" },
  subCommands: { rotate },
});
