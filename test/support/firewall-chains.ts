// The chains of offered ports (api/private/private-firewall.ts) a `pier server` of a test put in
// the host's firewall, found by name in its log: they outlive the server on purpose, so the test
// that started it takes them off.
import { removePrivateFirewall } from '../../api/private/private-firewall.js';

export async function removeFirewallChainsIn(log: string): Promise<void> {
  for (const chain of new Set([...log.matchAll(/"chain":"(PIER-[A-Za-z0-9]+)"/g)].map((m) => m[1] as string))) await removePrivateFirewall(chain);
}
