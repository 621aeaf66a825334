// The seam for building images from a Dockerfile and pushing them to a registry; the Docker
// engine implements it (docker-builder.ts). Failures are PierErrors whose code says which fix
// applies: E_BUILD_DOCKERFILE_MISSING, E_BUILD_DOCKERFILE_INVALID, E_BUILD_BASE_IMAGE_NOT_FOUND,
// E_BUILD_FAILED (details: the failing step and its last lines), E_PUSH_FAILED.
import type { RegistryCredentials } from '../registry/registry.js';
import type { Readable } from 'node:stream';

export interface BuildOptions {
  /** Path of the Dockerfile inside the context. */
  dockerfile: string;
  target?: string | undefined;
  args: Record<string, string>;
  /** `host:port/repo:tag` the built image is tagged with. */
  tag: string;
  labels: Record<string, string>;
}

export interface BuildFailure {
  /** The step that failed, as the builder wrote it (`Step 2/3 : RUN make`), if any. */
  step: string | null;
  /** The last lines the build wrote before it failed. */
  lastLines: string[];
}

export interface ImageBuilder {
  /** Builds the context (a tar stream), calling `onLine` with each output line; the image id. */
  build(context: Readable, options: BuildOptions, onLine: (line: string) => void): Promise<{ imageId: string }>;
  /** Pushes `host:port/repo:tag`; the manifest digest (`sha256:…`) the registry stored. */
  push(tag: string, onLine: (line: string) => void, credentials?: RegistryCredentials | null): Promise<{ digest: string }>;
}

/** Lines of build output kept for an error's details. */
export const BUILD_ERROR_LINES = 20;
