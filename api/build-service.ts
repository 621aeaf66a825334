// Building an app's image on the server: the spooled context goes to the engine's builder, the
// image is tagged in Pier's registry under the org and app, pushed, and named by the digest the
// registry stored (`host/org/app@sha256:…`), which is what a release pins and instances run.
// A failed build or push changes nothing: no release, no deployment.
import { createReadStream } from 'node:fs';
import type { Logger } from 'pino';
import { PierError } from './pier-error.js';
import type { RegistryGate } from './registry/registry-gate.js';
import type { Registry } from './registry/registry.js';
import type { ImageBuilder } from './runtime/image-builder.js';
import { LABELS } from './runtime/runtime.js';

export interface BuildRequest {
  orgId: string;
  app: string;
  dockerfile: string;
  target?: string | undefined;
  args: Record<string, string>;
  /** The context as a tar file (api/build-context-spool.ts) and its hash. */
  contextFile: string;
  contextHash: string;
}

export interface BuiltImage {
  /** `host/org/app@sha256:…`: the reference a deploy pins. */
  image: string;
  digest: string;
  imageId: string;
  contextHash: string;
}

export interface BuildServiceOptions {
  builder: ImageBuilder;
  /** Null when the server runs without one (--registry off). */
  registry: Registry | null;
  /** Pushes wait while garbage collection runs, and are noted so it keeps them (registry-gc.ts). */
  gate?: RegistryGate | undefined;
  log: Logger;
}

export function createBuildService(options: BuildServiceOptions) {
  const { builder, registry, log } = options;

  return {
    /** Throws E_REGISTRY_UNAVAILABLE before any upload when there is nowhere to push. */
    ensureRegistry(): Registry {
      if (!registry) {
        throw new PierError('E_REGISTRY_UNAVAILABLE', 'this server runs without an image registry (--registry off), so it cannot deploy from a Dockerfile', {
          status: 503,
          hint: 'start pier server with --registry local (the default) or --registry URL, or build the image yourself and name it with image = "…"',
        });
      }
      registry.ensureServing();
      return registry;
    },

    async build(req: BuildRequest, onLine: (line: string) => void): Promise<BuiltImage> {
      const reg = this.ensureRegistry();
      const repo = `${reg.host}/${req.orgId.toLowerCase()}/${req.app}`;
      const tag = `${repo}:build-${req.contextHash.replace(/^sha256:/, '').slice(0, 12)}`;
      const started = Date.now();
      const { imageId } = await builder.build(
        createReadStream(req.contextFile),
        {
          dockerfile: req.dockerfile,
          target: req.target,
          args: req.args,
          tag,
          // One label: the classic builder adds a LABEL step (a container) per label, ~0.1 s each.
          // Images are found by their repository in the registry, not by label.
          labels: { [LABELS.buildContext]: req.contextHash },
        },
        onLine,
      );
      const push = async (): Promise<string> => {
        const { digest } = await builder.push(tag, onLine, reg.credentials);
        const pinned = `${repo}@${digest}`;
        options.gate?.notePush(pinned);
        return pinned;
      };
      if (options.gate?.collecting) onLine('waiting for the registry: garbage collection is running');
      const image = options.gate ? await options.gate.shared(push) : await push();
      const digest = image.slice(image.indexOf('@') + 1);
      log.info({ app: req.app, image, imageId, contextHash: req.contextHash, ms: Date.now() - started }, 'image built and pushed');
      return { image, digest, imageId, contextHash: req.contextHash };
    },
  };
}

export type BuildService = ReturnType<typeof createBuildService>;
