// How the API decides between HTTP and HTTPS, the self-signed certificate it makes and keeps, and
// the fingerprint forms a user may type. Pure logic and files in a temp folder; the real servers
// and clients are in test/e2e/api-tls.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isLoopbackHost, resolveApiTls } from '../../../api/tls/api-tls.js';
import { certificateFingerprint, fingerprintHex, parseFingerprint } from '../../../api/tls/certificate-fingerprint.js';
import { createSelfSignedCertificate } from '../../../api/tls/self-signed-certificate.js';
import { PierError } from '../../../api/pier-error.js';

const run = promisify(execFile);

test('loopback is 127.0.0.0/8, ::1 in any spelling, IPv4-mapped 127.x and localhost; nothing else', () => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.0.0.2', true],
    ['127.255.255.254', true],
    ['::1', true],
    ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['0.0.0.0', false],
    ['::', false],
    ['198.18.0.1', false],
    ['10.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['fd00::1', false],
    ['128.0.0.1', false],
    ['example.com', false],
    ['localhost.example.com', false],
  ];
  for (const [host, loopback] of cases) assert.equal(isLoopbackHost(host), loopback, host);
});

test('a fingerprint is read as SHA256:base64, hex with colons or bare hex, and kept in one form', () => {
  const { certPem } = createSelfSignedCertificate(['127.0.0.1']);
  const canonical = certificateFingerprint(certPem);
  assert.match(canonical, /^SHA256:[A-Za-z0-9+/]{43}$/);
  const hex = fingerprintHex(canonical);
  assert.equal(hex, new X509Certificate(certPem).fingerprint256, 'the hex form is what openssl and Node print');
  for (const typed of [canonical, `${canonical}=`, hex, hex.toLowerCase(), hex.replace(/:/g, ''), `sha256:${hex}`, ` ${canonical} `]) {
    assert.equal(parseFingerprint(typed), canonical, typed);
  }
  for (const bad of ['', 'SHA256:', 'SHA256:abc', hex.slice(3), `${hex}:00`, 'AB:CD', 'SHA1:' + 'A'.repeat(27)]) assert.equal(parseFingerprint(bad), null, bad);
});

test('off loopback the API makes a self-signed EC P-256 certificate once, key 0600, naming the listen address, and reuses it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-api-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const setting = { mode: 'auto' as const, certFile: undefined, keyFile: undefined };
  const first = await resolveApiTls('198.18.7.1', setting, dir);
  assert.equal(first.kind, 'https');
  if (first.kind !== 'https') return;
  assert.equal(first.created, true);
  assert.equal(first.source, 'self-signed');
  const x509 = new X509Certificate(first.cert);
  assert.equal(x509.publicKey.asymmetricKeyType, 'ec');
  assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.match(x509.subjectAltName ?? '', /IP Address:198\.18\.7\.1/);
  assert.ok(x509.verify(x509.publicKey), 'self-signed: its own key verifies its signature');
  assert.equal(first.fingerprint, certificateFingerprint(x509));
  assert.equal((await stat(join(dir, 'api-tls', 'key.pem'))).mode & 0o777, 0o600);
  // openssl, an independent parser, reads it and agrees on the fingerprint.
  const { stdout } = await run('openssl', ['x509', '-in', join(dir, 'api-tls', 'cert.pem'), '-noout', '-fingerprint', '-sha256', '-ext', 'subjectAltName']);
  assert.ok(stdout.includes(fingerprintHex(first.fingerprint)), stdout);

  const again = await resolveApiTls('198.18.7.1', setting, dir);
  assert.equal(again.kind === 'https' && again.created, false, 'reused on the next start');
  assert.equal(again.kind === 'https' && again.fingerprint, first.fingerprint);
});

test('loopback serves plain HTTP unless a certificate is given; --api-tls off is refused off loopback with E_API_TLS_REQUIRED', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-api-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(await resolveApiTls('127.0.0.2', { mode: 'auto', certFile: undefined, keyFile: undefined }, dir), { kind: 'http' });
  assert.deepEqual(await resolveApiTls('127.0.0.1', { mode: 'off', certFile: undefined, keyFile: undefined }, dir), { kind: 'http' });
  for (const host of ['0.0.0.0', '::', '198.18.7.1']) {
    await assert.rejects(resolveApiTls(host, { mode: 'off', certFile: undefined, keyFile: undefined }, dir), (err: PierError) => {
      assert.equal(err.code, 'E_API_TLS_REQUIRED');
      assert.match(err.hint ?? '', /--api-tls off/);
      return true;
    });
  }

  const { certPem, keyPem } = createSelfSignedCertificate(['127.0.0.1']);
  const certFile = join(dir, 'given.pem');
  const keyFile = join(dir, 'given.key');
  await writeFile(certFile, certPem);
  await writeFile(keyFile, keyPem);
  const given = await resolveApiTls('127.0.0.1', { mode: 'auto', certFile, keyFile }, dir);
  assert.equal(given.kind === 'https' && given.source, 'given', 'a given certificate is served on loopback too');
  assert.equal(given.kind === 'https' && given.fingerprint, certificateFingerprint(certPem));

  const otherKey = join(dir, 'other.key');
  await writeFile(otherKey, createSelfSignedCertificate(['127.0.0.1']).keyPem);
  await assert.rejects(resolveApiTls('127.0.0.1', { mode: 'auto', certFile, keyFile: otherKey }, dir), { code: 'E_API_TLS_INVALID' });
  await assert.rejects(resolveApiTls('127.0.0.1', { mode: 'auto', certFile, keyFile: undefined }, dir), { code: 'E_API_TLS_INVALID' });
  await assert.rejects(resolveApiTls('127.0.0.1', { mode: 'auto', certFile: join(dir, 'missing.pem'), keyFile }, dir), { code: 'E_API_TLS_INVALID' });
});
