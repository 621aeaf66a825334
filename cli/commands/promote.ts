// `pier promote --from staging --to production`: deploys each app's current release of one
// environment (its exact digest and declared manifest, with the target's own [env.*] override)
// into another. Refused when the two drift (`pier env diff`) unless --allow-drift.
import { defineCommand } from 'citty';
import type { DeployView } from '../../api/views.js';
import { clientIn } from '../environment-arg.js';
import { idempotencyKey, idempotencyKeyArg } from '../idempotency-key.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'promote', description: "Deploy one environment's releases (exact digest and config) into another; refused on drift unless --allow-drift" },
  args: {
    from: { type: 'string', description: 'The environment to promote from, e.g. staging', required: true, valueHint: 'ENV' },
    to: { type: 'string', description: 'The environment to deploy to, e.g. production', required: true, valueHint: 'ENV' },
    app: { type: 'string', description: 'Only this app (default: every app deployed in --from)', valueHint: 'APP' },
    'allow-drift': { type: 'boolean', description: 'Promote even when `pier env diff` finds drift', default: false },
    message: { type: 'string', alias: 'm', description: 'Why (kept with the releases)' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
    'idempotency-key': idempotencyKeyArg,
  },
  async run({ args }) {
    const result = await clientIn(args.to).call<{ from: string; to: string; drift: unknown[]; deploys: DeployView[] }>(
      'POST',
      '/v1/promote',
      { from: args.from, to: args.to, allowDrift: args['allow-drift'], description: args.message ?? '', ...(args.app ? { apps: [args.app] } : {}) },
      idempotencyKey(args['idempotency-key']),
    );
    if (args.json) return printJson(result);
    for (const d of result.deploys) printLine(`${d.app.name}: ${args.to} v${d.release.version} runs ${d.release.imageDigest} (${d.deployment.id}, ${d.deployment.state})`);
  },
});
