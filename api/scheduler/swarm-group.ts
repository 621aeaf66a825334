// One Swarm service per (app, release, process group): what it is made of, from the release's
// manifest. Pure. The name carries the app, the release's version and the process so `docker
// service ls` reads like `pier status` (and a tag of the app's id, so that names never clash);
// Pier finds its services by label, never by name.
import { createHash } from 'node:crypto';
import type { Release } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import { PierError } from '../pier-error.js';
import { LABELS } from '../runtime/runtime.js';
import type { SwarmGroupSpec, SwarmMount } from '../runtime/swarm-service-spec.js';
import { FIRST_DELAY_MS, WINDOW_MS } from './crash-backoff.js';

export interface SwarmGroupInput {
  app: { id: string; name: string };
  release: Pick<Release, 'id' | 'version' | 'imageId' | 'manifest'> & Partial<Pick<Release, 'imageDigest'>>;
  process: string;
  installationId: string;
  replicas: number;
  stopGraceSeconds?: number;
  /** 0 for the release's first service of the process; a scale down makes the next (swarm-plan.ts). */
  generation?: number;
  /** The release's decrypted secrets, given to each task as env like on one engine (never logged). */
  secrets?: Record<string, string>;
  /** The group's volumes (swarm-volumes.ts): their mounts, and the swarm node that holds them, where every task runs. */
  volumes?: { nodeId: string; mounts: SwarmMount[] } | undefined;
}

/** On a service of generation 1 and later: the plan tells a process's services of one release apart. */
export const GENERATION_LABEL = 'dev.pier.swarm-generation';

const NAME_LIMIT = 63;

/**
 * `pier-APP-TAG-vVERSION-PROCESS[-gN]`. TAG is 6 hex characters of the app's id: Swarm names are
 * global to the swarm, while an app's name is unique only within its org and environment (a
 * preview deploys production's app names), and two installations may share a swarm.
 */
export function swarmServiceName(app: { id: string; name: string }, version: number, process: string, generation = 0): string {
  const gen = generation > 0 ? `-g${generation}` : '';
  const tail = `-${createHash('sha256').update(app.id).digest('hex').slice(0, 6)}-v${version}-${process}${gen}`.replace(/[^a-zA-Z0-9-]/g, '-');
  const name = `pier-${app.name}${tail}`.replace(/[^a-zA-Z0-9-]/g, '-');
  if (name.length <= NAME_LIMIT) return name;
  // Long app and process names: keep the tag, version and process readable, cut the app.
  const kept = tail.slice(-(NAME_LIMIT - 10));
  return `pier-${app.name.replace(/[^a-zA-Z0-9-]/g, '-').slice(0, NAME_LIMIT - 5 - kept.length)}${kept}`;
}

/**
 * What each node runs: the release's pinned `registry/repo@sha256:…` when it has one that other
 * machines can reach (each node pulls those exact bytes, or uses them when already there); else
 * the image id, which every node must already hold (docs/several-machines.md, "Images"). A
 * registry on loopback (Pier's own registry by default) is only the API machine's, so its
 * digest would not resolve on the other nodes.
 */
export function swarmImage(release: Pick<Release, 'imageId'> & Partial<Pick<Release, 'imageDigest'>>): string {
  const digest = release.imageDigest;
  if (!digest) return release.imageId;
  const at = digest.indexOf('@sha256:');
  const slash = digest.indexOf('/');
  if (at < 0 || slash < 0 || slash > at) return release.imageId;
  const host = digest.slice(0, slash).replace(/:\d+$/, '');
  // Only a registry host (a dot, a port or localhost) counts; "library/x@…" is Docker Hub's.
  if (!/[.:]|^localhost$|^\[/.test(digest.slice(0, slash))) return digest;
  if (host === 'localhost' || /^127\./.test(host) || host === '[::1]') return release.imageId;
  return digest;
}

export function swarmGroupSpec(input: SwarmGroupInput): SwarmGroupSpec {
  const manifest = input.release.manifest as Manifest;
  const spec = manifest.processes[input.process];
  if (!spec) {
    throw new PierError('E_PROCESS_NOT_FOUND', `release v${input.release.version} of ${input.app.name} has no process ${input.process}`, {
      status: 404,
      hint: `use one of: ${Object.keys(manifest.processes).join(', ')}`,
    });
  }
  const ports = manifest.endpoints.filter((e) => e.process === input.process).map((e) => e.target);
  // The check reaches the task on its node too: its port is published like an endpoint's.
  if (spec.check?.port !== undefined) ports.push(spec.check.port);
  const labels = {
    [LABELS.managed]: 'true',
    [LABELS.installation]: input.installationId,
    [LABELS.app]: input.app.id,
    [LABELS.release]: input.release.id,
    [LABELS.process]: input.process,
    ...(input.generation ? { [GENERATION_LABEL]: String(input.generation) } : {}),
  };
  return {
    name: swarmServiceName(input.app, input.release.version, input.process, input.generation),
    image: swarmImage(input.release),
    cmd: spec.cmd,
    env: {
      ...manifest.env,
      ...spec.env,
      ...input.secrets,
      PIER_APP: input.app.name,
      PIER_PROCESS: input.process,
      PIER_RELEASE: String(input.release.version),
      // Swarm fills these in per task (Go templates in Env are Swarm's own feature).
      PIER_INSTANCE: '{{.Task.Name}}',
      PIER_NODE: '{{.Node.Hostname}}',
    },
    labels,
    replicas: input.replicas,
    ports,
    stopGraceSeconds: input.stopGraceSeconds ?? 10,
    restart: { delayMs: FIRST_DELAY_MS, windowMs: WINDOW_MS },
    placement: { onePerNode: spec.placement?.spread === 'node', nodeLabels: spec.placement?.labels ?? {}, ...(input.volumes ? { nodeId: input.volumes.nodeId } : {}) },
    ...(input.volumes ? { mounts: input.volumes.mounts } : {}),
  };
}
