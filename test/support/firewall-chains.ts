// The chains of offered ports (api/private/private-firewall.ts) a `pier server` of a test put in
// the host's firewall, found by name in its log: they outlive the server on purpose, so the test
// that started it takes them off.
import { execFile } from 'node:child_process';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { removePrivateFirewall } from '../../api/private/private-firewall.js';

const exec = promisify(execFile);

export async function removeFirewallChainsIn(log: string): Promise<void> {
  for (const chain of new Set([...log.matchAll(/"chain":"(PIER-[A-Za-z0-9]+)"/g)].map((m) => m[1] as string))) await removePrivateFirewall(chain);
}

/** Whether this process may read the host's firewall (root with iptables); skips the test if not. */
export async function iptablesUsable(t: TestContext): Promise<boolean> {
  const can = await exec('iptables', ['-w', '5', '-S', 'FORWARD']).then(
    () => true,
    () => false,
  );
  if (!can) t.skip('needs root and iptables');
  return can;
}
