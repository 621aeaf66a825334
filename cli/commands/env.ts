// `pier env`: environments as resources. list, describe, extend a preview's TTL, destroy one
// (idempotent; a persistent or protected one needs --force and its name again, and never goes
// without a terminal or --yes), and diff two (exit 5 on drift).
import { createInterface } from 'node:readline/promises';
import { stderr, stdin } from 'node:process';
import { defineCommand } from 'citty';
import type { EnvironmentEndpointView, EnvironmentView } from '../../api/environment-views.js';
import { CliError } from '../cli-error.js';
import { confirm } from '../confirm.js';
import { clientIn } from '../environment-arg.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable } from '../output.js';

type Listed = EnvironmentView & { apps: string[] };
type Detail = EnvironmentView & { apps: { name: string; release: number | null; digest: string | null }[]; endpoints: EnvironmentEndpointView[] };
interface DiffView {
  a: string;
  b: string;
  drift: boolean;
  differences: { app: string; field: string; a: unknown; b: unknown; kind: 'declared' | 'drift'; why: string }[];
}

const json = { type: 'boolean', description: 'Print JSON on stdout', default: false } as const;
const path = (name: string) => `/v1/environments/${encodeURIComponent(name)}`;

const list = defineCommand({
  meta: { name: 'list', description: 'List the environments: kind, expiry, where they came from and their apps' },
  args: { json },
  async run({ args }) {
    const { environments } = await clientIn(undefined).call<{ environments: Listed[] }>('GET', '/v1/environments');
    if (args.json) return printJson({ environments });
    printTable(['NAME', 'KIND', 'EXPIRES', 'FROM', 'APPS'], environments.map((e) => [e.name, e.protected ? `${e.kind} (protected)` : e.kind, e.expiresAt ?? '-', origin(e), e.apps.join(', ') || '-']));
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'Show an environment: its apps, releases, digests, endpoints (address and port) and expiry' },
  args: { name: { type: 'positional', description: 'The environment', required: true, valueHint: 'NAME' }, json },
  async run({ args }) {
    const env = await clientIn(undefined).call<Detail>('GET', path(String(args.name)));
    if (args.json) return printJson(env);
    printLine(`Environment: ${env.name} (${env.kind}${env.protected ? ', protected' : ''})`);
    if (env.expiresAt) printLine(`Expires:     ${env.expiresAt}`);
    if (origin(env) !== '-') printLine(`From:        ${origin(env)}`);
    printLine();
    printTable(['APP', 'RELEASE', 'DIGEST'], env.apps.map((a) => [a.name, a.release === null ? '-' : `v${a.release}`, a.digest ?? '-']));
    if (env.endpoints.length) {
      printLine();
      printTable(['APP', 'PROCESS', 'PORT', 'MANIFEST PORT', 'ADDRESSES'], env.endpoints.map((e) => [e.app, e.process, e.port, e.manifestPort, e.addresses.join(' ')]));
    }
  },
});

const extend = defineCommand({
  meta: { name: 'extend', description: "Move a preview's expiry to now + TTL" },
  args: {
    name: { type: 'positional', description: 'The preview', required: true, valueHint: 'NAME' },
    ttl: { type: 'string', description: 'How long from now, e.g. 2h, 3d', required: true, valueHint: 'TTL' },
    json,
  },
  async run({ args }) {
    const { environment } = await clientIn(undefined).call<{ environment: EnvironmentView }>('POST', `${path(String(args.name))}/extend`, { ttl: args.ttl });
    if (args.json) return printJson({ environment });
    printLine(`${environment.name} now expires at ${environment.expiresAt}`);
  },
});

const destroy = defineCommand({
  meta: { name: 'destroy', description: 'Destroy an environment and every app in it (instances, endpoints, addresses, app tokens); again: nothing to do, exit 0' },
  args: {
    name: { type: 'positional', description: 'The environment', required: true, valueHint: 'NAME' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false },
    force: { type: 'boolean', description: 'Needed for a persistent or protected environment (production, staging)', default: false },
    confirm: { type: 'string', description: "With --force: the environment's name again (asked for on a terminal otherwise)", valueHint: 'NAME' },
    wait: { type: 'string', description: 'Seconds to wait until its containers are gone', default: '60', valueHint: 'SECONDS' },
    json,
  },
  async run({ args }) {
    const name = String(args.name);
    const client = clientIn(undefined);
    const info = await client.call<Detail>('GET', path(name)).catch((err: unknown) => {
      if (err instanceof CliError && err.code === 'E_ENVIRONMENT_NOT_FOUND') return null;
      throw err;
    });
    let confirmed = args.confirm;
    if (info && (info.kind === 'persistent' || info.protected)) {
      if (!args.force) {
        throw new CliError('E_ENVIRONMENT_PROTECTED', `${name} is a ${info.protected ? 'protected' : 'persistent'} environment: nothing was destroyed`, {
          hint: `to destroy it and its apps: \`pier env destroy ${name} --force --confirm ${name}\``,
          exitCode: EXIT.usage,
        });
      }
      if (!args.yes) confirmed = await askName(name, info.apps.map((a) => a.name));
      else if (confirmed !== name) throw new CliError('E_CONFIRMATION_REQUIRED', `destroying ${name} needs its name again`, { hint: `pass --confirm ${name}`, exitCode: EXIT.usage });
    } else if (info && !args.yes) {
      await confirm(`destroy ${name} and its apps (${info.apps.map((a) => a.name).join(', ') || 'none'})?`);
    }
    const q = new URLSearchParams({ wait: String(Number(args.wait) || 0), ...(args.force ? { force: 'true' } : {}), ...(confirmed ? { confirm: confirmed } : {}) });
    const result = await client.call<{ environment: string; destroyed: boolean; apps: { name: string; ports: number[]; containersRemaining: number | null }[] }>('DELETE', `${path(name)}?${q}`);
    if (args.json) return printJson(result);
    if (!result.destroyed) return printLine(`${name}: nothing to destroy (already gone)`);
    printLine(`destroyed ${name}: ${result.apps.length ? result.apps.map((a) => `${a.name}${a.ports.length ? ` (ports ${a.ports.join(', ')} freed)` : ''}`).join(', ') : 'no apps'}`);
  },
});

const diff = defineCommand({
  meta: { name: 'diff', description: 'Compare two environments (digest, manifest, env keys, secrets, counts, endpoints, volumes); exit 5 when a difference is drift rather than declared by [env.*]' },
  args: {
    a: { type: 'positional', description: 'One environment, e.g. staging', required: true, valueHint: 'A' },
    b: { type: 'positional', description: 'The other, e.g. production', required: true, valueHint: 'B' },
    json,
  },
  async run({ args }) {
    const view = await clientIn(undefined).call<DiffView>('GET', `${path(String(args.a))}/diff/${encodeURIComponent(String(args.b))}`);
    if (args.json) printJson(view);
    else if (view.differences.length === 0) printLine(`${view.a} and ${view.b} are the same`);
    else printTable(['APP', 'FIELD', view.a.toUpperCase(), view.b.toUpperCase(), 'KIND', 'WHY'], view.differences.map((d) => [d.app, d.field, show(d.a), show(d.b), d.kind, d.why]));
    if (view.drift) {
      const n = view.differences.filter((d) => d.kind === 'drift').length;
      throw new CliError('E_DRIFT', `${view.a} and ${view.b} drift: ${n} difference${n === 1 ? '' : 's'} no [env.*] override declares`, { hint: 'deploy the same manifest and image to both, or declare the difference in [env.NAME]', exitCode: EXIT.drift });
    }
  },
});

async function askName(name: string, apps: string[]): Promise<string> {
  if (!stdin.isTTY || !stderr.isTTY) {
    throw new CliError('E_CONFIRMATION_REQUIRED', `destroying ${name} needs a confirmation, and there is no terminal to ask on`, { hint: `pass --yes --confirm ${name}`, exitCode: EXIT.usage });
  }
  const rl = createInterface({ input: stdin, output: stderr });
  try {
    const typed = (await rl.question(`This destroys ${name} and its apps (${apps.join(', ') || 'none'}). Type its name to confirm: `)).trim();
    if (typed !== name) throw new CliError('E_CANCELLED', 'cancelled: the name did not match', { exitCode: EXIT.usage });
    return typed;
  } finally {
    rl.close();
  }
}

function origin(e: EnvironmentView): string {
  const parts = [e.pr !== null ? `PR #${e.pr}` : null, e.branch, e.commit?.slice(0, 12) ?? null].filter(Boolean);
  return parts.length ? parts.join(' ') : '-';
}

function show(v: unknown): string {
  return v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v);
}

export default defineCommand({
  meta: { name: 'env', description: 'Environments: list, describe, extend, destroy and diff (previews per branch, staging, production)' },
  subCommands: { list, describe, extend, destroy, diff },
});
