// Certificates made for a test with the openssl command line in the test's own temp folder: a CA,
// server certificates for given names (SANs), client certificates, and expired ones (-days -1).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export interface TestCa {
  cert: string;
  key: string;
  /** A certificate signed by this CA: PEM cert (leaf only) and key. */
  issue(options: { cn: string; names?: string[]; ips?: string[]; days?: number; client?: boolean }): { cert: string; key: string };
}

let serial = 0;

export function makeTestCa(t: TestContext, name = 'Pier Test CA'): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'pier-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...curve, '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', `/CN=${name}`, '-days', '3',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=keyCertSign,cRLSign']);
  return {
    cert: readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
    key: readFileSync(path.join(dir, 'ca.key'), 'utf8'),
    issue({ cn, names = [], ips = [], days = 2, client = false }) {
      const n = ++serial;
      const ext = [`basicConstraints=CA:FALSE`, `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`];
      if (names.length + ips.length > 0) ext.push(`subjectAltName=${[...names.map((d) => `DNS:${d}`), ...ips.map((a) => `IP:${a}`)].join(',')}`);
      writeFileSync(path.join(dir, `${n}.ext`), ext.join('\n') + '\n');
      run(['req', '-new', ...curve, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${cn}`]);
      run(['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(1000 + n + Math.floor(Math.random() * 1e6)),
        '-out', `${n}.pem`, '-days', String(days), '-extfile', `${n}.ext`]);
      return { cert: readFileSync(path.join(dir, `${n}.pem`), 'utf8'), key: readFileSync(path.join(dir, `${n}.key`), 'utf8') };
    },
  };
}
