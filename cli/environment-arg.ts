// `--env NAME` for the commands that act in an environment: the client sends it as the Pier-Env
// header (PIER_ENV when the flag is absent; production when neither is set).
import { ApiClient } from './api-client.js';
import { loadClientConfig } from './client-config.js';

export const envArg = { type: 'string', description: 'The environment (default: $PIER_ENV, else production)', valueHint: 'NAME' } as const;

/** A client acting in ENV (or PIER_ENV). */
export function clientIn(env: string | undefined): ApiClient {
  const config = loadClientConfig(process.env);
  return new ApiClient(env ? { ...config, environment: env } : config);
}
