// The container of an instance, as Pier makes it: the release's image and command, its
// environment (manifest, Pier's own variables, the private network's, the secrets), Pier's labels,
// Pier's network and the app's private network. Shared by the reconciler's start
// (instance-actions.ts) and a volume move's target, made before the cutover (prepared-start.ts).
import type { Logger } from 'pino';
import type { Instance, Release } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import { PierError } from '../pier-error.js';
import { privateEnv } from '../private/private-env.js';
import type { PrivateNetworks } from '../private/private-networks.js';
import { LABELS, type ContainerSpec, type MountSpec, type NetworkSpec } from '../runtime/runtime.js';

export interface ContainerSpecOptions {
  installationId: string;
  /** The network every instance joins. */
  network: NetworkSpec;
  privateNetworks?: PrivateNetworks | undefined;
  secrets?: ((release: Release) => Promise<Record<string, string>>) | undefined;
}

export interface SpecApp {
  id: string;
  orgId: string;
  name: string;
  environment?: string;
}

export function createContainerSpecs(options: ContainerSpecOptions) {
  /**
   * The app's private network, made when missing. Private networking is not worth a failed
   * start: without it the instance runs off it, and private-names.ts joins it there later.
   */
  async function privateNetwork(app: SpecApp, log: Logger): Promise<string[]> {
    if (!options.privateNetworks) return [];
    try {
      return [(await options.privateNetworks.networkFor(app)).name];
    } catch (err) {
      log.warn({ err }, 'private network unavailable; starting without it (joined later)');
      return [];
    }
  }

  async function secretsOf(release: Release): Promise<Record<string, string>> {
    if (!options.secrets) {
      throw new PierError('E_SECRETS_UNAVAILABLE', `release v${release.version} has secrets and this server has no secret key`, { status: 500, hint: 'start pier server with its data folder (secrets.key)' });
    }
    return options.secrets(release);
  }

  function base(row: Instance, release: Release, app: SpecApp): ContainerSpec {
    const manifest = release.manifest as Manifest;
    const spec = manifest.processes[row.process];
    return {
      name: row.id,
      image: release.imageId,
      cmd: spec?.cmd,
      env: { ...manifest.env, ...spec?.env, PIER_APP: app.name, PIER_ENV: app.environment ?? 'production', PIER_PROCESS: row.process, PIER_INSTANCE: row.id, PIER_RELEASE: String(release.version) },
      labels: {
        [LABELS.managed]: 'true',
        [LABELS.installation]: options.installationId,
        [LABELS.app]: app.id,
        [LABELS.environment]: app.environment ?? 'production',
        [LABELS.release]: release.id,
        [LABELS.process]: row.process,
        [LABELS.instance]: row.id,
      },
      network: options.network.name,
    };
  }

  return {
    privateNetwork,
    /** The whole spec of the instance's container with these mounts. */
    async full(row: Instance, release: Release, app: SpecApp, mounts: MountSpec[], log: Logger): Promise<ContainerSpec> {
      const alsoJoin = await privateNetwork(app, log);
      const spec = base(row, release, app);
      // Secrets are read at start and go only into the container's environment, never into a log.
      const secretEnv = Object.keys(release.secrets ?? {}).length ? await secretsOf(release) : {};
      // On a private network: the family to prefer there and the names it answers (private-env.ts).
      const onPrivate = alsoJoin.length ? privateEnv(release.manifest as Manifest, app.name, row.process) : {};
      return { ...spec, env: { ...spec.env, ...onPrivate, ...secretEnv }, mounts, alsoJoin };
    },
  };
}

export type ContainerSpecs = ReturnType<typeof createContainerSpecs>;
