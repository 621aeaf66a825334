// Checks a certificate upload (`pier certs add`) before anything is stored: the PEM parses, the
// key matches the leaf, each certificate of the chain is signed by the next, the leaf names DNS
// names and is within its validity. Every problem is a PierError with its own code (docs/tls.md).
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { PierError } from '../pier-error.js';

export interface CheckedCertificate {
  names: string[];
  chainPem: string;
  keyPem: string;
  fingerprint: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function checkCertificate(certPem: string, keyPem: string, now = new Date()): CheckedCertificate {
  const blocks = certPem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw bad('E_CERT_INVALID', 'the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)', 'pass the PEM chain, leaf first');
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw bad('E_CERT_INVALID', `a certificate does not parse: ${(err as Error).message}`, 'pass the PEM chain, leaf first');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw bad('E_CERT_KEY_INVALID', `the key file holds no readable private key: ${(err as Error).message}`, 'pass the unencrypted PEM private key of the certificate');
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw bad('E_CERT_KEY_MISMATCH', `the private key does not belong to the certificate for ${leaf.subject.replace(/\n/g, ', ')}`, 'pass the key the certificate was issued for');
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw bad('E_CERT_CHAIN', `certificate ${i + 1} of the chain (${oneLine(child.subject)}) is not signed by certificate ${i + 2} (${oneLine(parent.subject)})`, 'put the chain in order: leaf, then each issuer');
    }
  }
  const last = chain.at(-1)!;
  if (!last.checkIssued(last) && chain.length === 1 && leaf.issuer !== leaf.subject) {
    // A leaf alone, not self-signed: clients that lack the intermediate cannot verify it.
    throw bad('E_CERT_CHAIN', `the chain stops at the leaf, issued by ${oneLine(leaf.issuer)}; the intermediate certificates are missing`, 'append the issuer certificates to the file (the "fullchain" file of your CA)');
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw bad('E_CERT_EXPIRED', `the certificate expired on ${notAfter.toISOString()}`, 'renew it with your CA, or use certificates = "acme"');
  }
  if (notBefore.getTime() > now.getTime() + 60_000) {
    throw bad('E_CERT_NOT_YET_VALID', `the certificate is valid only from ${notBefore.toISOString()}`, "check the server's clock, or wait until then");
  }
  const names = dnsNames(leaf);
  if (names.length === 0) throw bad('E_CERT_NO_NAMES', 'the certificate names no DNS name (subjectAltName)', 'issue it with the host names it serves as DNS subject alternative names');
  return {
    names,
    chainPem: blocks.join('\n') + '\n',
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    fingerprint: createHash('sha256').update(leaf.raw).digest('hex').toUpperCase().match(/../g)!.join(':'),
    issuer: oneLine(leaf.issuer),
    notBefore,
    notAfter,
  };
}

function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  const names = san
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  return [...new Set(names)].sort();
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}

function bad(code: string, message: string, hint: string): PierError {
  return new PierError(code, message, { status: 422, hint });
}
