// Cleanup of the containers a test's `pier server` started: by the app label Pier puts on them,
// with the private networks they were on once no container is left on them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execAsync = promisify(execFile);
/** Every docker command here is bounded: an engine that stops answering fails the cleanup, not the run. */
const exec = (file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}) => execAsync(file, args, { timeout: 60_000, ...options });

/** Force-removes every container, running or not, labelled as belonging to the app. */
export async function removeAppContainers(appId: string): Promise<void> {
  const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`]);
  const ids = stdout.split('\n').filter(Boolean);
  if (!ids.length) return;
  const networks = await exec('docker', ['inspect', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}\n{{end}}', ...ids]).then(
    (r) => [...new Set(r.stdout.split('\n').filter((n) => n.startsWith('pier-private-')))],
    () => [],
  );
  await exec('docker', ['rm', '-f', ...ids]);
  await removePrivateNetworks(networks);
}

/** As removeAppContainers, then the app's Docker volumes (the ones binding its Pier volumes). */
export async function removeAppContainersAndVolumes(appId: string): Promise<void> {
  await removeAppContainers(appId);
  const { stdout } = await exec('docker', ['volume', 'ls', '-q', '--filter', `label=dev.pier.app=${appId}`]);
  const vols = stdout.split('\n').filter(Boolean);
  if (vols.length) await exec('docker', ['volume', 'rm', ...vols]);
}

/** Removes Pier private networks by name; one still in use (another app of the test's org) stays. */
export async function removePrivateNetworks(names: string[]): Promise<void> {
  for (const name of names) await exec('docker', ['network', 'rm', name]).catch(() => undefined);
}

/**
 * Force-removes every container of the `pier server` that runs the app: all those carrying the
 * same installation label as the app's containers (its apps in every environment, previews
 * included), with their private networks.
 */
export async function removeInstallationContainers(appId: string): Promise<void> {
  const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`]);
  const first = stdout.split('\n').find(Boolean);
  if (!first) return;
  const installation = (await exec('docker', ['inspect', '--format', '{{index .Config.Labels "dev.pier.installation"}}', first])).stdout.trim();
  if (!installation) return removeAppContainers(appId);
  const all = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.installation=${installation}`]);
  const appIds = await exec('docker', ['inspect', '--format', '{{index .Config.Labels "dev.pier.app"}}', ...all.stdout.split('\n').filter(Boolean)]).then(
    (r) => [...new Set(r.stdout.split('\n').filter(Boolean))],
    () => [appId],
  );
  for (const id of appIds) await removeAppContainers(id);
}

/**
 * Removes what one installation (one `pier server` database) left on the engine: its containers,
 * then its private networks. Best effort: an engine that is gone (a test's own, stopped) is skipped.
 */
export async function removeInstallation(installation: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const run = (args: string[]) => exec('docker', args, { env, timeout: 30_000 }).then((r) => r.stdout.split('\n').filter(Boolean), () => [] as string[]);
  const containers = await run(['ps', '-aq', '--filter', `label=dev.pier.installation=${installation}`]);
  if (containers.length) await run(['rm', '-f', ...containers]);
  const networks = await run(['network', 'ls', '-q', '--filter', `label=dev.pier.installation=${installation}`, '--filter', 'label=dev.pier.private=true']);
  for (const id of networks) await run(['network', 'rm', id]);
}
