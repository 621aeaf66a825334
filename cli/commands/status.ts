// `pier status`: what runs, per app: release, last deployment, instances, endpoints.
import { defineCommand } from 'citty';
import type { StatusView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printLine, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'status', description: 'Show what runs: releases, deployments, instances and endpoints' },
  args: {
    app: { type: 'string', alias: 'a', description: 'Only this app', valueHint: 'APP' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const client = new ApiClient(loadClientConfig(process.env));
    if (args.app) {
      const status = await client.status(args.app);
      if (args.json) return printJson(status);
      return render(status);
    }
    const { apps } = await client.listApps();
    const all = await Promise.all(apps.map((a) => client.status(a.name)));
    if (args.json) return printJson({ apps: all });
    if (all.length === 0) return printLine('no apps yet; `pier deploy` creates one from pier.toml');
    all.forEach((s, i) => {
      if (i > 0) printLine();
      render(s);
    });
  },
});

function render(s: StatusView): void {
  const dep = s.deployment;
  printLine(`app ${s.app.name}  release ${s.release ? `v${s.release.version} ${s.release.image}` : 'none'}`);
  if (dep) printLine(`deployment ${dep.id} of v${dep.release}: ${dep.state}${dep.failureReason ? ` (${dep.failureReason.split('\n')[0]})` : ''}`);
  if (s.endpoints.length) {
    printLine();
    printTable(
      ['PORT', 'PROCESS', 'TARGET', 'PROXY', 'ADDRESSES'],
      s.endpoints.map((e) => [e.port, e.process, e.target, e.proxyProtocol, e.addresses.join(' ')]),
    );
  }
  printLine();
  printTable(
    ['INSTANCE', 'PROCESS', 'RELEASE', 'STATE', 'PORTS', 'STARTED', 'REASON'],
    s.instances.map((i) => [
      i.id,
      i.process,
      `v${i.release}`,
      i.desired === 'running' ? i.state : `${i.state} (stopping)`,
      Object.entries(i.hostPorts).map(([c, h]) => `${h}->${c}`).join(','),
      i.startedAt,
      i.lastReason,
    ]),
  );
}
