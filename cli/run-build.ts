// Building a manifest's [build] through the API, for `pier deploy` and `pier build`: pack the
// context (relative to the manifest file's folder), upload it, print the build's lines as they
// come (plain lines on stderr, or each event as a JSON line), and end with the pinned image or
// the build's coded error (a failed build exits 3).
import { dirname, resolve } from 'node:path';
import type { BuildSpec } from '../api/manifest.js';
import type { ApiClient, BuildEvent } from './api-client.js';
import { packContext } from './build-context.js';
import { CliError } from './cli-error.js';
import { exitCodeForApiError } from './exit-codes.js';
import { liveProgress, progress } from './output.js';

export type BuiltImage = Extract<BuildEvent, { type: 'built' }>;

export interface RunBuildOptions {
  app: string;
  build: BuildSpec;
  /** The manifest file: the context is relative to its folder. */
  manifestFile: string;
  /** Where each event goes as a JSON line (--json); plain progress lines on stderr otherwise. */
  jsonLine?: ((event: BuildEvent) => void) | undefined;
}

export async function runBuild(client: ApiClient, o: RunBuildOptions): Promise<BuiltImage> {
  const dir = resolve(dirname(o.manifestFile), o.build.context);
  const packed = await packContext(dir, { dockerfile: o.build.dockerfile, ignore: o.build.ignore });
  if (!o.jsonLine) progress(`building ${o.app} from ${dir} (${o.build.dockerfile})`);
  // The server answers once it holds the whole context: until then, the size sent so far.
  const started = Date.now();
  const upload = o.jsonLine ? null : liveProgress(() => `  uploading ${formatBytes(packed.bytes())}`);
  const uploaded = (): void => upload?.done(`  uploaded ${formatBytes(packed.bytes())} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    for await (const event of client.build({ app: o.app, dockerfile: o.build.dockerfile, target: o.build.target, args: o.build.args }, packed.stream)) {
      uploaded();
      o.jsonLine?.(event);
      if (event.type === 'line') {
        if (!o.jsonLine) progress(`  ${event.line}`);
      } else if (event.type === 'built') {
        if (!o.jsonLine) progress(`built ${event.image}`);
        return event;
      } else {
        throw new CliError(event.error.code, event.error.message, {
          hint: event.error.hint,
          details: event.error.details,
          exitCode: exitCodeForApiError(event.error.code, 422),
        });
      }
    }
  } finally {
    // No answer came (refused, or the connection broke): say how far the upload got.
    upload?.done(`  sent ${formatBytes(packed.bytes())} of the context`);
  }
  throw new CliError('E_BUILD_INTERRUPTED', 'the build stream ended before the build did', { hint: 'the server may have restarted: deploy again' });
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
