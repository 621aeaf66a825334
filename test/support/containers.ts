// Cleanup of the containers a test's `pier server` started: by the app label Pier puts on them,
// with the private networks they were on once no container is left on them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

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

/** Removes Pier private networks by name; one still in use (another app of the test's org) stays. */
export async function removePrivateNetworks(names: string[]): Promise<void> {
  for (const name of names) await exec('docker', ['network', 'rm', name]).catch(() => undefined);
}
