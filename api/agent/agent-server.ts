// Runs a node agent: the storage root's driver behind its HTTP API (agent-app.ts), listening on
// one address. `close()` stops listening and ends open connections.
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { PierError } from '../pier-error.js';
import type { VolumeDriver } from '../volumes/volume-driver.js';
import { createAgentApp } from './agent-app.js';
import type { AgentRoot } from './agent-protocol.js';
import type { NamesState } from './task-names.js';

export interface AgentServerOptions {
  listen: { host: string; port: number };
  driver: VolumeDriver;
  token: string;
  version: string;
  log: Logger;
  offeredPorts?: (() => NonNullable<AgentRoot['offeredPorts']>) | undefined;
  /** Takes the private names the API server pushes (task-names.ts), when the agent watches its engine. */
  setNames?: ((state: NamesState) => Promise<void>) | undefined;
}

export interface AgentServer {
  url: string;
  close(): Promise<void>;
}

export async function startAgentServer(options: AgentServerOptions): Promise<AgentServer> {
  const app = createAgentApp(options);
  const server = await new Promise<ServerType>((resolve, reject) => {
    // The upload routes read (or, refusing a file early, drop) their bodies themselves, and the API
    // server stops sending once it has the answer (its uploads are keep-alive, agent-transport.ts).
    // Hono's own clean-up would give an unread body 500 ms, then close the socket with the rest
    // still arriving: under load that reset can beat the answer saying why.
    const s = serve({ fetch: app.fetch, hostname: options.listen.host, port: options.listen.port, autoCleanupIncoming: false }, () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new PierError('E_LISTEN', `cannot listen on ${options.listen.host}:${options.listen.port}: ${err.code ?? err.message}`, {
          hint: err.code === 'EADDRINUSE' ? 'another process holds the port: stop it or pass another --listen' : 'pass an address of this node with --listen',
          cause: err,
        }),
      ),
    );
  });
  // A send or receive may rightly take hours: no request timeout.
  if ('requestTimeout' in server) server.requestTimeout = 0;
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}
