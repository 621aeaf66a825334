// `pier status`: what runs, per app: release, last deployment (with its whole failure text),
// processes (desired count and where it came from, ready, check), instances with their health,
// endpoints and whether the edges serve them (and why not); and when instances should run but
// none does, why.
import { defineCommand } from 'citty';
import type { EventView, InstanceView, ProcessView, StatusView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printLine, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'status', description: 'Show what runs: releases, deployments, instances (state and health), endpoints and whether the edges serve them, and why nothing runs when nothing does' },
  args: {
    app: { type: 'string', alias: 'a', description: 'Only this app', valueHint: 'APP' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const client = new ApiClient(loadClientConfig(process.env));
    if (args.app) {
      const status = await client.status(args.app);
      if (args.json) return printJson(status);
      return render(status, await whyNothingRuns(client, status));
    }
    const { apps } = await client.listApps();
    const all = await Promise.all(apps.map((a) => client.status(a.name)));
    if (args.json) return printJson({ apps: all });
    if (all.length === 0) return printLine('no apps yet; `pier deploy` creates one from pier.toml');
    for (const [i, s] of all.entries()) {
      if (i > 0) printLine();
      render(s, await whyNothingRuns(client, s));
    }
  },
});

function render(s: StatusView, why: string[]): void {
  const dep = s.deployment;
  printLine(`app ${s.app.name}  release ${s.release ? `v${s.release.version} ${s.release.image}` : 'none'}`);
  if (dep) {
    printLine(`deployment ${dep.id} of v${dep.release}: ${dep.state}`);
    // The whole reason, last log lines included: it is what explains a failed deploy.
    if (dep.failureReason) for (const line of dep.failureReason.split('\n')) printLine(`  ${line}`);
  }
  if (s.processes.length) {
    printLine();
    printTable(
      ['PROCESS', 'DESIRED', 'FROM', 'READY', 'CHECK'],
      s.processes.map((p) => [p.process, p.desired, countSource(p.desiredFrom), p.ready, p.check]),
    );
  }
  if (s.endpoints.length) {
    printLine();
    printTable(
      ['PORT', 'PROCESS', 'TARGET', 'PROXY', 'ADDRESSES', 'SERVED'],
      s.endpoints.map((e) => [e.port, e.process, e.target, e.proxyProtocol, addressColumn(e), e.served.state === 'no-edge' ? 'no edge' : e.served.state]),
    );
    // What the edges say about an endpoint they do not serve, whole: it is what to act on.
    for (const e of s.endpoints.filter((x) => x.served.state !== 'served' && x.served.state !== 'private')) {
      printLine(`  :${e.port} ${e.served.state === 'no-edge' ? 'not served' : e.served.state}: ${e.served.reason ?? ''}`);
      if (e.served.hint) printLine(`    ${e.served.hint}`);
    }
  }
  printLine();
  printTable(
    ['INSTANCE', 'PROCESS', 'RELEASE', 'STATE', 'HEALTH', 'NODE', 'ADDRESS', 'STARTED', 'REASON'],
    s.instances.map((i) => [
      i.id,
      i.process,
      `v${i.release}`,
      i.desired === 'running' ? i.state : `${i.state} (stopping)`,
      i.health === 'none' ? '' : i.health,
      i.node,
      i.address,
      i.startedAt,
      i.lastReason,
    ]),
  );
  if (why.length) {
    printLine();
    for (const line of why) printLine(line);
  }
}

/**
 * When the release wants instances and none runs (a crash loop, a failed start), the table alone
 * is empty: say why from the newest stopped instances and the latest crash-loop event.
 */
async function whyNothingRuns(client: ApiClient, s: StatusView): Promise<string[]> {
  // Only for the release that should run; a failed deploy's own reason is printed above.
  if (!s.release || !s.deployment || s.deployment.release !== s.release.version || s.deployment.state === 'failed') return [];
  const desired = Object.values(s.deployment.progress.desired).reduce((a, n) => a + n, 0);
  if (desired === 0 || s.instances.some((i) => i.state === 'running')) return [];
  const [stopped, crashLoop] = await Promise.all([client.instances(s.app.name, 5), latestEvent(client, s.app.name, 'instance.crash-loop')]);
  const lines = [`no instance is running, and ${desired} should (${summary(s.deployment?.progress.desired ?? {})}).`];
  const exits = stopped.filter((i) => i.state !== 'running' && (i.lastReason || i.lastExitCode !== null));
  if (exits.length) {
    lines.push('latest exits:');
    for (const i of exits) lines.push(`  ${i.stoppedAt ?? '-'}  ${i.id} (${i.process} v${i.release}): ${exitText(i)}`);
  }
  if (crashLoop) lines.push(`crash loop (${crashLoop.time}): ${crashLoop.message}`);
  lines.push(`\`pier events --app ${s.app.name}\` and \`pier logs --app ${s.app.name}\` tell more.`);
  return lines;
}

async function latestEvent(client: ApiClient, app: string, type: string): Promise<EventView | null> {
  const { events } = await client.latestEvents(app, type);
  return events.at(-1) ?? null;
}

function exitText(i: InstanceView): string {
  const reason = i.lastReason ?? (i.lastExitCode !== null ? `exited with code ${i.lastExitCode}` : i.state);
  return reason.split('\n')[0] ?? reason;
}

/** Where a desired count came from, in a few words (api/desired-counts.ts holds the rule). */
function countSource(source: ProcessView['desiredFrom']): string {
  if (source.from === 'manifest') return `manifest v${source.release}`;
  if (source.from === 'scale') return source.at ? `pier scale ${source.at}` : 'pier scale';
  return 'default';
}

function summary(counts: Record<string, number>): string {
  return Object.entries(counts).map(([p, n]) => `${p}=${n}`).join(' ');
}

/** The endpoint's addresses; the app's own ones are marked, the shared ones are not. */
function addressColumn(e: StatusView['endpoints'][number]): string {
  if (e.access === 'private') return 'private (pier port-forward)';
  return e.addresses.map((a, i) => (e.bind[i]?.kind === 'dedicated' ? `${a} (dedicated)` : a)).join(' ');
}
