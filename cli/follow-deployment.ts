// Following a rollout from the CLI: poll the deployment, print its events on stderr, turn how it
// ended into the documented exit code, and say where a release that runs is served. Used by
// deploy and rollback.
import type { DeploymentView } from '../api/views.js';
import type { ApiClient } from './api-client.js';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';
import { printLine, progress, warn } from './output.js';

/** Polls the deployment and prints its events to stderr until it ends or the wait runs out. */
export async function followDeployment(client: ApiClient, app: string, start: DeploymentView, waitMs: number): Promise<DeploymentView> {
  const until = Date.now() + waitMs;
  let dep = start;
  let after: number | undefined;
  for (;;) {
    const listed = await client.events(app, { deployment: dep.id, ...(after === undefined ? {} : { after }) }).catch(async (err: unknown) => {
      // The app was deleted under the rollout: the deployment says how it ended.
      if ((err as { code?: string }).code !== 'E_APP_NOT_FOUND') throw err;
      return null;
    });
    if (listed === null) return client.deployment(dep.id);
    const { events } = listed;
    for (const e of events) {
      if (e.type !== 'deploy.started') progress(`  ${e.message}`);
      after = e.id;
    }
    if (dep.state !== 'running' || Date.now() > until) return dep;
    await new Promise((r) => setTimeout(r, 500));
    dep = await client.deployment(dep.id);
  }
}

export function checkOutcome(dep: DeploymentView, detached: boolean): void {
  switch (dep.state) {
    case 'succeeded':
      return;
    case 'failed':
      throw new CliError('E_DEPLOY_FAILED', `the deploy of v${dep.release} failed: ${dep.failureReason ?? 'no reason recorded'}`, {
        hint: `\`pier status --app ${dep.app}\` shows what runs now and why; the previous release keeps serving`,
        exitCode: EXIT.deployFailed,
      });
    case 'superseded':
      throw new CliError('E_DEPLOY_SUPERSEDED', `deployment ${dep.id} was replaced by a newer deploy before it finished`);
    case 'cancelled':
      throw new CliError('E_DEPLOY_CANCELLED', `deployment ${dep.id} was cancelled: ${dep.failureReason ?? 'no reason recorded'}`, {
        hint: `\`pier events --app ${dep.app} --deleted\` shows what happened`,
      });
    case 'running':
      if (detached) return;
      throw new CliError('E_DEPLOY_PENDING', `stopped waiting; deployment ${dep.id} is still rolling out on the server`, {
        hint: `\`pier status --app ${dep.app}\` shows its progress`,
        exitCode: EXIT.pending,
      });
  }
}

/**
 * Where the release is served now (stdout, unless --json); a warning on stderr for each endpoint no
 * edge serves: the rollout does not wait for edges when none is live (docs/api.md, "What is served").
 */
export async function tellServed(client: ApiClient, app: string, json: boolean): Promise<void> {
  const status = await client.status(app).catch(() => null);
  for (const e of status?.endpoints ?? []) {
    if (e.served.state === 'served') {
      if (!json) printLine(`  :${e.port} served on ${e.addresses.join(' ')} by ${e.served.edges.length === 1 ? 'the edge' : `${e.served.edges.length} edges`}`);
    } else if (e.served.state === 'private') {
      // Bound nowhere on purpose: not a warning.
      if (!json) printLine(`  :${e.port} private: pier port-forward --app ${app} LOCAL:${e.port}`);
    } else {
      warn(`:${e.port} is not served: ${e.served.reason ?? e.served.state}${e.served.hint ? `; ${e.served.hint}` : ''}`);
    }
  }
}
