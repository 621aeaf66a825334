// `pier deploy`: send pier.toml (building its [build] on the server first), then follow the
// rollout on the server until it ends.
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import { parseManifest, type Manifest } from '../../api/manifest.js';
import { CliError } from '../cli-error.js';
import { EXIT } from '../exit-codes.js';
import { checkOutcome, followDeployment, tellServed } from '../follow-deployment.js';
import { clientIn, envArg } from '../environment-arg.js';
import { idempotencyKey, idempotencyKeyArg } from '../idempotency-key.js';
import { printJson, printLine, progress } from '../output.js';
import { runBuild } from '../run-build.js';

export default defineCommand({
  meta: { name: 'deploy', description: 'Deploy the app described by pier.toml (building its [build] on the server first) and wait until the release runs and the edges serve its endpoints' },
  args: {
    config: { type: 'string', alias: 'c', description: 'Manifest file (a [build] context is relative to its folder)', default: 'pier.toml', valueHint: 'FILE' },
    message: { type: 'string', alias: 'm', description: 'Why this deploy (kept with the release)' },
    detach: { type: 'boolean', description: 'Return once the deploy is accepted; do not wait', default: false },
    wait: { type: 'string', description: 'Give up waiting after this many seconds (exit 8; the rollout goes on)', default: '600', valueHint: 'SECONDS' },
    json: { type: 'boolean', description: 'Print the deployment as JSON on stdout (build events as JSON lines on stderr)', default: false },
    'idempotency-key': idempotencyKeyArg,
    env: { ...envArg, description: "The environment to deploy to, made on first use (default: $PIER_ENV, else production); e.g. pr-42. A preview's endpoints keep the manifest's ports on its own IPv6 (with an IPv6 pool) and get preview-range ports on the shared IPv4; --json lists each with bind [{address, port, family}]" },
    ttl: { type: 'string', description: "A preview's time to live from this deploy, e.g. 2h, 3d (default: the manifest's [env.preview] ttl, else 72h)", valueHint: 'TTL' },
    branch: { type: 'string', description: 'The branch a preview comes from (shown by pier env list)', valueHint: 'BRANCH' },
    commit: { type: 'string', description: 'The commit a preview comes from', valueHint: 'SHA' },
    pr: { type: 'string', description: 'The pull request number a preview comes from', valueHint: 'N' },
  },
  async run({ args }) {
    const text = await readFile(args.config, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliError('E_MANIFEST_UNREADABLE', `cannot read ${args.config}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, {
        hint: 'run this in the folder that holds pier.toml, or pass -c FILE',
        exitCode: EXIT.usage,
      });
    });
    const waitSeconds = Number(args.wait);
    if (!Number.isFinite(waitSeconds) || waitSeconds <= 0) {
      throw new CliError('E_USAGE', `--wait must be a positive number of seconds, not "${args.wait}"`, { exitCode: EXIT.usage });
    }
    const pr = args.pr === undefined ? undefined : Number(args.pr);
    if (pr !== undefined && (!Number.isInteger(pr) || pr < 1)) throw new CliError('E_USAGE', `--pr must be a pull request number, not "${args.pr}"`, { exitCode: EXIT.usage });
    const environment = { ...(args.ttl ? { ttl: args.ttl } : {}), ...(args.branch ? { branch: args.branch } : {}), ...(args.commit ? { commit: args.commit } : {}), ...(pr ? { pr } : {}) };
    const client = clientIn(args.env);
    // A manifest with [build] is built first; an invalid one goes to the server as it is, which
    // reports every problem (the same ones `pier validate` finds).
    const manifest = tryParse(text, args.config);
    const built = manifest?.build
      ? await runBuild(client, {
          app: manifest.app,
          build: manifest.build,
          manifestFile: args.config,
          jsonLine: args.json ? (event) => progress(JSON.stringify(event)) : undefined,
        })
      : undefined;
    const result = await client.deploy(
      { manifest: text, file: args.config, description: args.message ?? '', ...(built ? { build: { image: built.image } } : {}), ...(Object.keys(environment).length ? { environment } : {}) },
      idempotencyKey(args['idempotency-key']),
    );
    const { app, release, deployment } = result;
    progress(
      result.created
        ? `deploying ${app.name} release v${release.version} (${shortDigest(release.imageDigest)}…) as ${deployment.id}`
        : `${app.name} release v${release.version} is already deployed (${deployment.id}, ${deployment.state})`,
    );
    const final = args.detach ? deployment : await followDeployment(client, app.name, deployment, waitSeconds * 1000);
    // For CI: where the release is served and until when, beside the deployment.
    if (args.json) printJson({ ...final, environment: result.environment?.name, digest: release.imageDigest, expiresAt: result.environment?.expiresAt ?? null, endpoints: result.endpoints ?? [] });
    else if (final.state === 'succeeded') printLine(`${app.name} v${final.release} is running`);
    if (final.state === 'succeeded') await tellServed(client, app.name, args.json);
    checkOutcome(final, args.detach);
  },
});

/** `sha256:` and 12 hex digits, also of a `repo@sha256:…` reference. */
function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf('@') + 1).slice(0, 19);
}

function tryParse(text: string, file: string): Manifest | null {
  try {
    return parseManifest(text, file);
  } catch {
    return null;
  }
}
