// `pier server`: run the API, the scheduler and the edge in one process. This command is a
// launcher and the server's entry point: it loads the server program lazily (so other commands
// stay light), makes the files it writes private, and installs the last-resort error handlers.
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import pino from 'pino';
import { printLine, warn } from '../output.js';

export default defineCommand({
  meta: { name: 'server', description: 'Run Pier: the API, the scheduler and the edge proxy, in one process' },
  args: {
    'api-listen': { type: 'string', description: 'Where the API listens (env PIER_API_LISTEN)', default: '127.0.0.1:7700', valueHint: 'HOST:PORT' },
    'data-dir': { type: 'string', description: 'Data folder: embedded database, admin token, edge state (env PIER_DATA_DIR; default ./.pier)', valueHint: 'DIR' },
    role: { type: 'string', description: 'Roles to run: all, or api (edge-only nodes use `pier edge`)', default: 'all', valueHint: 'ROLES' },
    'body-limit': { type: 'string', description: 'Largest request body the API reads, e.g. 4MiB; larger ones get 413 (env PIER_BODY_LIMIT; default 4MiB)', valueHint: 'SIZE' },
  },
  async run({ args, rawArgs }) {
    // Everything this process writes (database files, token, edge state) is for its user alone.
    process.umask(0o077);
    const { loadConfig } = await import('../../api/config.js');
    const { startServer } = await import('../../api/server.js');
    const { securePrivateFolder } = await import('../../api/private-folder.js');
    const { installLastResort } = await import('../../api/last-resort.js');
    const explicitListen = rawArgs.some((a) => a.startsWith('--api-listen'));
    const config = loadConfig(process.env, {
      apiListen: explicitListen ? args['api-listen'] : undefined,
      dataDir: args['data-dir'],
      role: args.role,
      bodyLimit: args['body-limit'],
    });
    // Logs go to stderr; stdout is for what the user asked to see.
    const log = pino({ level: config.logLevel }, pino.destination(2));
    const lastResort = installLastResort({ log, exit: (code) => process.exit(code) });

    const secured = await securePrivateFolder(config.dataDir);
    if (secured.fixed > 0) {
      log.warn({ dataDir: config.dataDir, fixed: secured.fixed, examples: secured.examples }, 'data folder files were readable or writable by other users; made private');
      warn(`made ${secured.fixed} file${secured.fixed === 1 ? '' : 's'} in ${config.dataDir} private: other users could read or change them (written by an older Pier, or by hand)`);
    }

    const server = await startServer(config, log);
    // The embedded database sets its own file modes (its in-memory file system ignores the umask):
    // make what it wrote on a first start private too. Its folders are 0700 already.
    const after = await securePrivateFolder(config.dataDir);
    if (after.fixed > 0) log.info({ fixed: after.fixed, examples: after.examples }, 'made files the embedded database wrote private');
    printLine(`pier: API on ${server.apiUrl} (database: ${server.databaseKind === 'pglite' ? `embedded, in ${config.dataDir}` : 'PostgreSQL'})`);
    if (server.edgeAddresses.length) printLine(`pier: edge serves endpoints on ${server.edgeAddresses.join(' and ')}`);
    printLine(`pier: admin token in ${server.adminTokenFile}; ${await cliConfigLine(config.cliConfigFile, server.adminTokenFile, server.apiUrl)}`);
    for (const w of server.warnings) warn(w);

    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    log.info('stopping');
    await server.close();
    lastResort.remove();
  },
});

/** Says whether the local CLI talks to this server; the server writes its config only when there is none (api/admin-bootstrap.ts). */
async function cliConfigLine(file: string, tokenFile: string, apiUrl: string): Promise<string> {
  const token = await readFile(tokenFile, 'utf8').then((s) => s.trim(), () => null);
  const saved = await readFile(file, 'utf8').then(
    (s) => JSON.parse(s) as { token?: unknown; apiUrl?: unknown },
    () => null,
  );
  if (saved && saved.token === token && saved.apiUrl === apiUrl) return `the local CLI is configured (${file})`;
  return `${file} holds other settings and was left as is; to use this server: PIER_API_URL=${apiUrl} PIER_TOKEN=$(cat ${tokenFile}) pier …, or \`pier login\``;
}
