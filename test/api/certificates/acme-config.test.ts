// PIER_ACME_* parsing and the manifest's certificates = "acme" rules: bad values are coded errors
// naming what to set; defaults are 30 days before expiry, hourly checks, 5-minute first retry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAcmeConfig } from '../../../api/certificates/acme-config.js';
import { parseManifest } from '../../../api/manifest.js';
import { PierError } from '../../../api/pier-error.js';

test('PIER_ACME_*: off without a directory, defaults, a CA file, coded errors', () => {
  assert.equal(parseAcmeConfig({}), undefined);
  const config = parseAcmeConfig({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_EMAIL: 'ops@example.com' });
  assert.deepEqual(config, { directoryUrl: 'https://ca.example/dir', email: 'ops@example.com', ca: undefined, renewBeforeMs: 30 * 86_400_000, checkEveryMs: 3_600_000, retryMs: 300_000, edgeWaitMs: 30_000, keepDroppedMs: 7 * 86_400_000 });
  assert.equal(parseAcmeConfig({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_KEEP_DROPPED: '0s' })!.keepDroppedMs, 0);
  assert.equal(parseAcmeConfig({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_EDGE_WAIT: '5s' })!.edgeWaitMs, 5_000);
  const dir = mkdtempSync(join(tmpdir(), 'pier-acme-'));
  writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  assert.match(parseAcmeConfig({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_CA_FILE: join(dir, 'ca.pem'), PIER_ACME_RENEW_BEFORE: '10s' })!.ca!, /BEGIN CERTIFICATE/);
  const code = (env: NodeJS.ProcessEnv) => {
    try {
      parseAcmeConfig(env);
      return 'none';
    } catch (err) {
      assert.ok(err instanceof PierError);
      return err.code;
    }
  };
  assert.equal(code({ PIER_ACME_DIRECTORY: 'http://ca.example/dir' }), 'E_CONFIG_INVALID');
  assert.equal(code({ PIER_ACME_DIRECTORY: 'not a url' }), 'E_CONFIG_INVALID');
  assert.equal(code({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_RENEW_BEFORE: 'soon' }), 'E_CONFIG_INVALID');
  assert.equal(code({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_EDGE_WAIT: 'a while' }), 'E_CONFIG_INVALID');
  assert.equal(code({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_KEEP_DROPPED: '7 days' }), 'E_CONFIG_INVALID');
  assert.equal(code({ PIER_ACME_DIRECTORY: 'https://ca.example/dir', PIER_ACME_CA_FILE: join(dir, 'missing.pem') }), 'E_CONFIG_INVALID');
});

test('manifest: certificates = "acme" needs tls = "terminate" and hostnames; no wildcards', () => {
  const base = (endpoint: string) => `app = "shop"\nimage = "x/y:1"\n[processes.web]\ncmd = ["x"]\n[[endpoints]]\nprocess = "web"\nport = 443\ntarget = 8080\n${endpoint}`;
  const m = parseManifest(base('tls = "terminate"\ncertificates = "acme"\nhostnames = ["Shop.example.com", "www.shop.example.com"]\n'));
  assert.deepEqual(m.endpoints[0]!.hostnames, ['shop.example.com', 'www.shop.example.com']);
  assert.throws(() => parseManifest(base('certificates = "acme"\nhostnames = ["shop.example.com"]\n')), /needs tls = "terminate"/);
  assert.throws(() => parseManifest(base('tls = "terminate"\ncertificates = "acme"\n')), /hostnames/);
  assert.throws(() => parseManifest(base('tls = "terminate"\nhostnames = ["shop.example.com"]\n')), /hostnames are for certificates = "acme"/);
  assert.throws(() => parseManifest(base('tls = "terminate"\ncertificates = "acme"\nhostnames = ["*.example.com"]\n')), /wildcard/);
});
