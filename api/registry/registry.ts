// Where built images are pushed and every node pulls them from by digest: Pier's own local
// registry (local-registry.ts) or an external one named by URL (external-registry.ts).

export interface RegistryEvent {
  type: 'registry.exited' | 'registry.restarted';
  message: string;
  data: Record<string, unknown>;
}

/** Basic-auth credentials of an external registry: kept in the data dir, never printed. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface Registry {
  readonly kind: 'local' | 'external';
  /** `host:port` as image references name it, e.g. `127.0.0.1:5000`. */
  readonly host: string;
  /** Where its HTTP API answers (`http://127.0.0.1:5000`). */
  readonly url: string;
  /** Credentials for pushes, pulls and API calls; null when it needs none. */
  readonly credentials: RegistryCredentials | null;
  /** Throws E_REGISTRY_UNAVAILABLE (503) when it is known not to serve. */
  ensureServing(): void;
  close(): Promise<void>;
}
