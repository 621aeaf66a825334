// Where a node agent listens (`pier agent --listen HOST:PORT`): one address of the nodes' private
// network, never a wildcard nor a public address. The agent speaks plain HTTP: its token and the
// volumes' bytes cross the network in the clear, so that network must be one only the nodes reach.
import { isIP } from 'node:net';
import { parseListen } from '../config.js';
import { PierError } from '../pier-error.js';
import { isPrivateAddress } from '../registry/registry-listen.js';

export function parseAgentListen(value: string): { host: string; port: number } {
  const listen = parseListen(value.trim());
  const bad = (why: string) =>
    new PierError('E_CONFIG_INVALID', `agent listen address "${value}" ${why}`, {
      status: 400,
      hint: 'pass --listen ADDRESS:PORT with this node\'s address on the nodes\' private network, e.g. 10.0.0.2:7710 (127.0.0.1 on one machine)',
    });
  if (!isIP(listen.host)) throw bad('is not an IP address');
  if (listen.host === '0.0.0.0' || listen.host === '::') throw bad('is a wildcard: the agent would answer on every network of the node, public ones too');
  if (!isPrivateAddress(listen.host)) throw bad('is a public address: the agent speaks plain HTTP, so its token and the volumes\' data would cross the internet in the clear');
  return listen;
}
