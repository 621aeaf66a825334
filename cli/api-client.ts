// A typed client of Pier's HTTP API; response types come from api/views.ts (types only).
import type { DeployView, DeploymentView, ErrorBody, EventView, StatusView, AppView } from '../api/views.js';
import { CliError } from './cli-error.js';
import type { ClientConfig } from './client-config.js';
import { exitCodeForApiError } from './exit-codes.js';

export interface DeployRequest {
  manifest: string;
  file: string;
  description?: string;
}

export class ApiClient {
  constructor(private readonly config: ClientConfig) {}

  listApps(): Promise<{ apps: AppView[] }> {
    return this.request('GET', '/v1/apps');
  }

  status(app: string): Promise<StatusView> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}`);
  }

  deploy(body: DeployRequest): Promise<DeployView> {
    return this.request('POST', '/v1/deploys', body);
  }

  deployment(id: string): Promise<DeploymentView> {
    return this.request('GET', `/v1/deployments/${encodeURIComponent(id)}`);
  }

  events(app: string, query: { after?: number; deployment?: string } = {}): Promise<{ events: EventView[] }> {
    const q = new URLSearchParams();
    if (query.after !== undefined) q.set('after', String(query.after));
    if (query.deployment) q.set('deployment', query.deployment);
    const qs = q.size ? `?${q}` : '';
    return this.request('GET', `/v1/apps/${encodeURIComponent(app)}/events${qs}`);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.config.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.config.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (err) {
      throw new CliError('E_API_UNREACHABLE', `cannot reach the Pier API at ${this.config.apiUrl}`, {
        hint: 'start it with `pier server`, or set PIER_API_URL',
        cause: err,
      });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new CliError('E_API_RESPONSE', `the API answered ${res.status} with a body that is not JSON`, { hint: `is ${this.config.apiUrl} a Pier API?` });
    }
    if (!res.ok) {
      const e = (parsed as Partial<ErrorBody>).error;
      const code = e?.code ?? `E_HTTP_${res.status}`;
      throw new CliError(code, e?.message ?? `the API answered ${res.status}`, {
        hint: e?.hint,
        details: e?.details,
        exitCode: exitCodeForApiError(code, res.status),
      });
    }
    return parsed as T;
  }
}

