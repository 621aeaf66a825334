// The few calls of the registry HTTP API (distribution's /v2/) that garbage collection and the
// rollback check need: which repositories and tags there are, whether a manifest is still there,
// its size, and deleting it by digest. Credentials go in an Authorization header, never in a URL
// or a message.
import { PierError } from '../pier-error.js';
import type { Registry } from './registry.js';

const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

export interface RegistryClient {
  /** Repository names (`org/app`). */
  repositories(): Promise<string[]>;
  tags(repo: string): Promise<string[]>;
  /** The digest a tag or digest names, or null when the registry has no such manifest. */
  manifestDigest(repo: string, reference: string): Promise<string | null>;
  /** Bytes the manifest names (config and layers; layers shared with other images counted too). */
  manifestBytes(repo: string, digest: string): Promise<number>;
  /** Deletes a manifest (and the tags on it); one already gone is not an error. */
  deleteManifest(repo: string, digest: string): Promise<void>;
}

export function createRegistryClient(registry: Pick<Registry, 'url' | 'credentials'>, timeoutMs = 10_000): RegistryClient {
  async function call(method: string, path: string, accept?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (accept) headers.accept = accept;
    if (registry.credentials) headers.authorization = `Basic ${Buffer.from(`${registry.credentials.username}:${registry.credentials.password}`).toString('base64')}`;
    let res: Response;
    try {
      res = await fetch(`${registry.url}${path}`, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new PierError('E_REGISTRY_UNAVAILABLE', `the image registry at ${registry.url} does not answer: ${(err as Error).message}`, {
        status: 503,
        hint: 'check that it runs (`pier events` shows registry events); Pier retries on its own',
        cause: err,
      });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw registryAuthError(registry.url, registry.credentials !== null);
    }
    return res;
  }

  async function fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => '');
    if (res.status === 405) {
      throw new PierError('E_REGISTRY_DELETE_DISABLED', `the image registry at ${registry.url} does not allow deleting manifests (${what})`, {
        status: 502,
        hint: 'enable deletes in its configuration (storage: delete: enabled: true) or run `pier server` with --registry-keep all',
      });
    }
    throw new PierError('E_REGISTRY_FAILED', `the image registry answered ${res.status} to ${what}: ${text.slice(0, 200)}`, { status: 502, hint: 'check the registry (its log) and retry' });
  }

  return {
    async repositories() {
      const out: string[] = [];
      let last = '';
      for (let page = 0; page < 1000; page++) {
        const res = await call('GET', `/v2/_catalog?n=1000${last ? `&last=${encodeURIComponent(last)}` : ''}`);
        if (!res.ok) return fail(res, 'listing repositories');
        const names = ((await res.json()) as { repositories?: string[] | null }).repositories ?? [];
        out.push(...names);
        if (names.length < 1000 || !res.headers.get('link')) break;
        last = names[names.length - 1] as string;
      }
      return out;
    },
    async tags(repo) {
      const res = await call('GET', `/v2/${repo}/tags/list`);
      if (res.status === 404) {
        await res.body?.cancel();
        return [];
      }
      if (!res.ok) return fail(res, `listing the tags of ${repo}`);
      return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
    },
    async manifestDigest(repo, reference) {
      const res = await call('HEAD', `/v2/${repo}/manifests/${reference}`, MANIFEST_TYPES);
      await res.body?.cancel();
      if (res.status === 404) return null;
      if (!res.ok) return fail(res, `looking up ${repo}:${reference}`);
      return res.headers.get('docker-content-digest') ?? (reference.startsWith('sha256:') ? reference : null);
    },
    async manifestBytes(repo, digest) {
      const res = await call('GET', `/v2/${repo}/manifests/${digest}`, MANIFEST_TYPES);
      if (res.status === 404) {
        await res.body?.cancel();
        return 0;
      }
      if (!res.ok) return fail(res, `reading ${repo}@${digest}`);
      const text = await res.text();
      const doc = JSON.parse(text) as { config?: { size?: number }; layers?: { size?: number }[] };
      return text.length + (doc.config?.size ?? 0) + (doc.layers ?? []).reduce((sum, l) => sum + (l.size ?? 0), 0);
    },
    async deleteManifest(repo, digest) {
      const res = await call('DELETE', `/v2/${repo}/manifests/${digest}`);
      await res.body?.cancel();
      if (res.status === 202 || res.status === 200 || res.status === 404) return;
      return fail(res, `deleting ${repo}@${digest}`);
    },
  };
}

/** The registry refused the credentials (or wants some): the fix names the settings, never their values. */
export function registryAuthError(where: string, hadCredentials: boolean, cause?: unknown): PierError {
  return new PierError(
    'E_REGISTRY_AUTH',
    hadCredentials ? `the image registry at ${where} refused Pier's credentials` : `the image registry at ${where} wants credentials and Pier has none`,
    {
      status: 502,
      hint: hadCredentials
        ? 'restart `pier server` with the right ones: --registry-user USER and the password in PIER_REGISTRY_PASSWORD or --registry-password-file FILE (Pier keeps them in its data folder)'
        : 'start `pier server` with --registry-user USER and the password in PIER_REGISTRY_PASSWORD or --registry-password-file FILE',
      cause,
    },
  );
}
