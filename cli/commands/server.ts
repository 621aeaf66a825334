// `pier server`: run the API, the scheduler and the edge in one process. This command is a
// launcher: it loads the server program lazily, so other commands stay light.
import { defineCommand } from 'citty';
import pino from 'pino';
import { printLine, warn } from '../output.js';

export default defineCommand({
  meta: { name: 'server', description: 'Run Pier: the API, the scheduler and the edge proxy, in one process' },
  args: {
    'api-listen': { type: 'string', description: 'Where the API listens (env PIER_API_LISTEN)', default: '127.0.0.1:7700', valueHint: 'HOST:PORT' },
    'data-dir': { type: 'string', description: 'Data folder: embedded database, admin token, edge state (env PIER_DATA_DIR; default ./.pier)', valueHint: 'DIR' },
    role: { type: 'string', description: 'Roles to run: all, or api (edge-only nodes use `pier edge`)', default: 'all', valueHint: 'ROLES' },
  },
  async run({ args, rawArgs }) {
    const { loadConfig } = await import('../../api/config.js');
    const { startServer } = await import('../../api/server.js');
    const explicitListen = rawArgs.some((a) => a.startsWith('--api-listen'));
    const config = loadConfig(process.env, {
      apiListen: explicitListen ? args['api-listen'] : undefined,
      dataDir: args['data-dir'],
      role: args.role,
    });
    // Logs go to stderr; stdout is for what the user asked to see.
    const log = pino({ level: config.logLevel }, pino.destination(2));
    const server = await startServer(config, log);
    printLine(`pier: API on ${server.apiUrl} (database: ${server.databaseKind === 'pglite' ? `embedded, in ${config.dataDir}` : 'PostgreSQL'})`);
    if (server.edgeAddresses.length) printLine(`pier: edge serves endpoints on ${server.edgeAddresses.join(' and ')}`);
    printLine(`pier: admin token in ${server.adminTokenFile}; the local CLI is configured (${config.cliConfigFile})`);
    for (const w of server.warnings) warn(w);

    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    log.info('stopping');
    await server.close();
  },
});
