// Cleanup of the containers a test's `pier server` started: by the app label Pier puts on them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Force-removes every container, running or not, labelled as belonging to the app. */
export async function removeAppContainers(appId: string): Promise<void> {
  const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`]);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length) await exec('docker', ['rm', '-f', ...ids]);
}
