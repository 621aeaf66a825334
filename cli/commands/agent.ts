// `pier agent`: the node agent. Runs on each node of a swarm and does the volume operations of one
// storage root on that node (create, snapshot, restore, send and receive of snapshots…) for the
// API server, and with --docker-host enforces the offered ports of private networks in the tasks of
// this node's engine and gives them their IPv6 address there (api/agent/task-firewall.ts), over HTTP on the nodes' private network with a shared token
// (docs/several-machines.md, "The node agent"). A launcher: the program is loaded lazily; logs go
// to stderr. Signals: SIGTERM/SIGINT stop it (transfers under way fail and are rolled back by the
// API server).
import { defineCommand } from 'citty';
import pino from 'pino';
import { CliError } from '../cli-error.js';
import { EXIT } from '../exit-codes.js';
import { printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'agent', description: 'Run the node agent: volume operations on this node’s storage root for the API server, and offered private ports enforced in this node’s tasks (on a swarm)' },
  args: {
    listen: { type: 'string', description: "Where the agent listens: this node's address on the nodes' private network, never a wildcard or public address: it speaks plain HTTP (env PIER_AGENT_LISTEN)", valueHint: 'ADDRESS:PORT' },
    'volume-root': { type: 'string', description: 'The storage root whose volumes and snapshots it serves (env PIER_AGENT_VOLUME_ROOT)', valueHint: 'PATH' },
    'volume-driver': { type: 'string', description: 'auto (btrfs when the root is on btrfs, else dir), btrfs or dir (env PIER_VOLUME_DRIVER; default auto)', valueHint: 'auto|btrfs|dir' },
    'docker-host': { type: 'string', description: "This node's Docker engine (unix:///var/run/docker.sock): the agent then enforces the offered ports ([[private]] ports) in the node's tasks on a private network, gives them their IPv6 address there and writes the private names the API server pushes into their hosts files; without it, on this node, none of that is done (env PIER_AGENT_DOCKER_HOST)", valueHint: 'unix:///PATH' },
    'token-file': { type: 'string', description: 'File holding the token the API server sends (its --node-agent-token-file), or set PIER_AGENT_TOKEN; never on the command line, where `ps` shows it', valueHint: 'FILE' },
  },
  async run({ args, rawArgs }) {
    if (rawArgs.some((a) => a === '--token' || a.startsWith('--token='))) {
      throw new CliError('E_USAGE', '--token is not accepted: the token would be visible to every user of this host in `ps`', { exitCode: EXIT.usage, hint: 'set PIER_AGENT_TOKEN, or pass --token-file FILE' });
    }
    const listenText = args.listen ?? (process.env.PIER_AGENT_LISTEN || undefined);
    const root = args['volume-root'] ?? (process.env.PIER_AGENT_VOLUME_ROOT || undefined);
    if (!listenText || !root) {
      throw new CliError('E_USAGE', `pass ${[!listenText && '--listen ADDRESS:PORT', !root && '--volume-root PATH'].filter(Boolean).join(' and ')}`, { exitCode: EXIT.usage, hint: 'see `pier agent --help`' });
    }
    const driverKind = args['volume-driver'] ?? (process.env.PIER_VOLUME_DRIVER || 'auto');
    if (driverKind !== 'auto' && driverKind !== 'btrfs' && driverKind !== 'dir') {
      throw new CliError('E_USAGE', `--volume-driver must be auto, btrfs or dir, not "${driverKind}"`, { exitCode: EXIT.usage });
    }
    const { parseAgentListen } = await import('../../api/agent/agent-listen.js');
    const { readAgentToken } = await import('../../api/agent/agent-token.js');
    const listen = parseAgentListen(listenText);
    const dockerHost = args['docker-host'] ?? (process.env.PIER_AGENT_DOCKER_HOST || undefined);
    if (dockerHost !== undefined && !/^unix:\/\/\/./.test(dockerHost)) {
      throw new CliError('E_USAGE', `--docker-host must be unix:///PATH, not "${dockerHost}"`, { exitCode: EXIT.usage, hint: "pass this node's engine socket: --docker-host unix:///var/run/docker.sock" });
    }
    const token = readAgentToken(args['token-file'], process.env.PIER_AGENT_TOKEN, '--token-file');
    if (!token) throw new CliError('E_USAGE', 'the agent needs a token', { exitCode: EXIT.usage, hint: 'pass --token-file FILE (one line made by `openssl rand -hex 32`) or set PIER_AGENT_TOKEN' });

    // The same as `pier server`: what the root holds is for this user (and its containers) alone.
    process.umask(0o077);
    const { resolve } = await import('node:path');
    const { openVolumeDriver } = await import('../../api/volumes/open-volume-driver.js');
    const { startAgentServer } = await import('../../api/agent/agent-server.js');
    const { PIER_VERSION } = await import('../pier-version.js');
    const log = pino({ level: process.env.PIER_LOG_LEVEL ?? 'info' }, pino.destination(2));
    const driver = await openVolumeDriver(resolve(root), driverKind);
    let firewall: import('../../api/agent/task-firewall.js').TaskFirewall | undefined;
    if (dockerHost) {
      const { startTaskFirewall, iptablesWorks } = await import('../../api/agent/task-firewall.js');
      const broken = await iptablesWorks();
      if (broken) log.warn({ problem: broken }, 'iptables does not run here: offered ports cannot be enforced in this node\'s tasks (run the agent as root, with iptables installed)');
      firewall = startTaskFirewall({ socketPath: dockerHost.slice('unix://'.length), log: log.child({ component: 'offered-ports' }) });
    } else {
      log.warn('no --docker-host: offered ports ([[private]] ports) are not enforced in this node\'s tasks');
    }
    const agent = await startAgentServer({ listen, driver, token, version: PIER_VERSION, log, offeredPorts: firewall ? () => firewall.status() : undefined, setNames: firewall ? (state) => firewall.setNames(state) : undefined });
    const stop = new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    printLine(`pier agent: serving ${driver.root} (${driver.kind}) on ${agent.url}${dockerHost ? ` and enforces offered ports in the tasks of ${dockerHost}` : ''}`);
    log.info({ url: agent.url, root: driver.root, driver: driver.kind }, 'agent started');
    await stop;
    await agent.close();
    await firewall?.close();
    log.info('stopped');
  },
});
