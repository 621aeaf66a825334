// Which node agents the API server talks to (`pier server --node-agent ADDRESS=URL`, repeatable, or
// PIER_NODE_AGENTS, comma separated) and the token they share (--node-agent-token-file FILE,
// PIER_NODE_AGENT_TOKEN_FILE, or PIER_AGENT_TOKEN). A node is named by its swarm address, as in
// PIER_SWARM_NODE_ENGINES. Given in the configuration, not registered by the agents: the operator
// already lists every node's engine there, an agent needs no credentials for the API, and a node
// that is not listed can never claim another's volumes. Read at start; on a swarm each agent's root
// holds its node's volumes (api/volumes/agent-roots.ts; docs/several-machines.md, "The node agent").
import { PierError } from '../pier-error.js';
import { Secret } from '../registry/registry-credentials.js';
import { readAgentToken } from './agent-token.js';

export interface NodeAgentsSetting {
  /** The agent's URL by node address. */
  agents: Record<string, string>;
  token: Secret;
}

export function parseNodeAgents(values: string[], tokenFile: string | undefined, envToken: string | undefined): NodeAgentsSetting | undefined {
  const agents: Record<string, string> = {};
  for (const value of values) {
    const text = value.trim();
    const at = text.indexOf('=');
    const node = text.slice(0, at);
    const url = at > 0 ? agentUrl(text.slice(at + 1)) : null;
    if (at <= 0 || !/^[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}$/.test(node) || url === null || agents[node] !== undefined) {
      throw new PierError('E_CONFIG_INVALID', `node agent "${value}" is not ADDRESS=http://HOST:PORT with a new node address`, {
        status: 400,
        hint: 'name each node by its swarm address and its agent\'s URL: --node-agent 10.0.0.2=http://10.0.0.2:7710 (repeatable; PIER_NODE_AGENTS, comma separated)',
      });
    }
    agents[node] = url;
  }
  if (Object.keys(agents).length === 0) return undefined;
  const token = readAgentToken(tokenFile, envToken, '--node-agent-token-file');
  if (!token) {
    throw new PierError('E_CONFIG_INVALID', 'node agents are given without their token', {
      status: 400,
      hint: 'pass --node-agent-token-file FILE (or PIER_NODE_AGENT_TOKEN_FILE, or PIER_AGENT_TOKEN): the token the agents were started with',
    });
  }
  return { agents, token: new Secret(token) };
}

/** `http://HOST:PORT` (plain HTTP: the agents listen on the nodes' private network), normalized; null when not. */
function agentUrl(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' || url.port === '' || url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return null;
  return `http://${url.host}`;
}
