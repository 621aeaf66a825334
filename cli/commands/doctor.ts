// `pier doctor`: checks this host and the installation, and says how to fix each problem. Host
// checks need nothing running (cli/doctor/host-checks.ts, pool-checks.ts, volume-checks.ts); when a server answers at the CLI's API
// URL, its health, its edges' listeners and its clock are checked too. Exit 0 when nothing fails.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defineCommand } from 'citty';
import { loadConfig, type ServerConfig } from '../../api/config.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig, type ClientConfig } from '../client-config.js';
import { apiFetch } from '../api-transport.js';
import { CliError } from '../cli-error.js';
import { CommandExit } from '../command-exit.js';
import { checkDataFolder, checkDatabase, checkDocker, checkIpv6Loopback, checkNode, checkOpenFiles, clockCheck, type CheckResult } from '../doctor/host-checks.js';
import { checkPools } from '../doctor/pool-checks.js';
import { checkVolumes } from '../doctor/volume-checks.js';
import { checkPrivateNetworks } from '../doctor/private-checks.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'doctor', description: 'Check this host and the installation (Node, Docker, database, data folder, open files, IPv6, address pools, volumes, edges, clocks) and say how to fix each problem' },
  args: {
    json: { type: 'boolean', description: 'Print { ok, checks: [{ name, status, message, fix }] } on stdout', default: false },
  },
  async run({ args }) {
    const checks = await runChecks(process.env);
    const ok = checks.every((c) => c.status !== 'fail');
    if (args.json) printJson({ ok, checks });
    else {
      printTable(
        ['CHECK', 'STATUS', 'FINDING'],
        checks.map((c) => [c.name, c.status, c.message]),
      );
      const fixes = checks.filter((c) => c.fix && (c.status === 'fail' || c.status === 'warn'));
      if (fixes.length) {
        printTable(
          ['TO FIX', 'HOW'],
          fixes.map((c) => [c.name, c.fix]),
        );
      }
    }
    // The report is the output: a failed check ends the command with 1 and nothing more to say.
    if (!ok) throw new CommandExit(EXIT.error);
  },
});

export async function runChecks(env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const checks: CheckResult[] = [checkNode()];
  let config: ServerConfig;
  try {
    config = loadConfig(env);
  } catch (err) {
    checks.push({ name: 'configuration', status: 'fail', message: (err as Error).message, fix: 'fix the PIER_* environment variables it names' });
    return checks;
  }
  const journal = JSON.parse(await readFile(fileURLToPath(new URL('../../../db/migrations/meta/_journal.json', import.meta.url)), 'utf8')) as { entries: unknown[] };
  const [docker, database, folder, files, ipv6, pools, volumes] = await Promise.all([
    checkDocker(config.dockerSocket),
    checkDatabase(config, journal.entries.length),
    checkDataFolder(config.dataDir),
    checkOpenFiles(),
    config.edge.ipv6 === null ? Promise.resolve<CheckResult>({ name: 'ipv6 loopback', status: 'skip', message: 'the edge serves no IPv6 address (PIER_EDGE_IPV6=off)' }) : checkIpv6Loopback(),
    checkPools(config.ips.pools, config.roles.includes('edge')),
    checkVolumes(config.volumes),
  ]);
  checks.push(docker, ...database, folder, files, ipv6, pools, volumes, ...checkPrivateNetworks(config.runtime, await agentPorts(config)), ...(await serverChecks(env)));
  return checks;
}

/** The running server, if one answers: its dependencies, its edges' listeners, its clock. */
async function serverChecks(env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  let client: ApiClient;
  let apiUrl: string;
  let config: ClientConfig;
  try {
    config = loadClientConfig(env);
    client = new ApiClient(config);
    apiUrl = config.apiUrl;
  } catch (err) {
    return [{ name: 'server', status: 'skip', message: `no API to ask: ${(err as Error).message}` }];
  }
  let res: Response;
  try {
    res = await apiFetch(config, `${apiUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    if (err instanceof CliError) return [{ name: 'server', status: 'fail', message: err.message, fix: err.hint ?? 'see docs/operations.md' }];
    return [{ name: 'server', status: 'skip', message: `no server answers at ${apiUrl} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); server checks skipped` }];
  }
  const checks: CheckResult[] = [];
  const date = Date.parse(res.headers.get('date') ?? '');
  const health = (await res.json().catch(() => null)) as { status?: string; dependencies?: Record<string, { status: string; error?: string }> } | null;
  const down = Object.entries(health?.dependencies ?? {}).filter(([, d]) => d.status !== 'up');
  checks.push(
    res.status !== 200
      ? { name: 'server', status: 'warn', message: `the server at ${apiUrl} answers ${res.status} (starting?)`, fix: 'wait for it to finish starting, then run pier doctor again' }
      : down.length
        ? { name: 'server', status: 'fail', message: `the server at ${apiUrl} cannot reach: ${down.map(([n, d]) => `${n} (${d.error ?? 'down'})`).join(', ')}`, fix: 'bring those back; the server recovers by itself once they answer' }
        : { name: 'server', status: 'ok', message: `the server at ${apiUrl} is up, its dependencies answer` },
  );
  // HTTP dates have one-second resolution.
  if (Number.isFinite(date)) checks.push(clockCheck('clock (server)', date - Date.now() + 500, 'the API server'));
  try {
    const { edges } = await client.edges();
    const live = edges.filter((e) => e.live);
    const failures = live.flatMap((e) => e.failures.map((f) => ({ edge: e.name, f })));
    if (live.length === 0) checks.push({ name: 'edge listeners', status: 'warn', message: 'no edge reports to this API: nothing serves the endpoints', fix: 'run `pier server` (it has an edge) or `pier edge --api URL`' });
    else if (failures.length) {
      checks.push({
        name: 'edge listeners',
        status: 'fail',
        message: failures.map(({ edge, f }) => `edge ${edge} cannot serve ${f.name} on ${f.address}:${f.port}: ${f.message} (${f.code})`).join('; '),
        fix: '`pier describe endpoint APP/PORT` says why and what to do: free the port, or give the endpoint another one',
      });
    } else checks.push({ name: 'edge listeners', status: 'ok', message: `${live.length} live edge(s), every endpoint bound` });
  } catch (err) {
    checks.push({ name: 'edge listeners', status: 'skip', message: `cannot list the edges: ${(err as Error).message}` });
  }
  return checks;
}

/** What each configured node agent says about offered ports (a swarm only; none configured: empty). */
async function agentPorts(config: ServerConfig): Promise<Parameters<typeof checkPrivateNetworks>[1]> {
  if (config.runtime.kind !== 'swarm' || !config.nodeAgents) return {};
  const { createAgentRoots } = await import('../../api/volumes/agent-roots.js');
  const pino = (await import('pino')).default;
  return createAgentRoots(config.nodeAgents, pino({ level: 'silent' })).offeredPorts();
}
