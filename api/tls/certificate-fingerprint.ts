// A certificate's SHA-256 fingerprint, the one value an operator compares and a client pins. Shown
// as `SHA256:` and base64 (as SSH shows keys); read also as hex with or without colons (as
// `openssl x509 -fingerprint -sha256` prints it). Kept and compared in one canonical form.
import { createHash, X509Certificate } from 'node:crypto';

/** Canonical form: `SHA256:` and unpadded base64 of the digest of the certificate's DER. */
export function certificateFingerprint(cert: string | Buffer | X509Certificate): string {
  const der = cert instanceof X509Certificate ? cert.raw : typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return formatFingerprint(createHash('sha256').update(der).digest());
}

export function formatFingerprint(digest: Buffer): string {
  return `SHA256:${digest.toString('base64').replace(/=+$/, '')}`;
}

/** The same digest as hex with colons, for comparing with what openssl prints. */
export function fingerprintHex(fingerprint: string): string {
  const digest = fingerprintDigest(fingerprint);
  return digest ? [...digest].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':') : fingerprint;
}

/**
 * The canonical form of what a user typed, or null when it is not a SHA-256 fingerprint:
 * `SHA256:base64`, `SHA256:hex`, hex with colons, or bare hex (64 digits).
 */
export function parseFingerprint(text: string): string | null {
  const digest = fingerprintDigest(text);
  return digest ? formatFingerprint(digest) : null;
}

function fingerprintDigest(text: string): Buffer | null {
  const value = text.trim().replace(/^sha-?256[:=]/i, '');
  const hex = value.replace(/:/g, '');
  if (/^[0-9a-f]{64}$/i.test(hex) && (value.includes(':') ? /^([0-9a-f]{2}:){31}[0-9a-f]{2}$/i.test(value) : true)) return Buffer.from(hex, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(value)) {
    const digest = Buffer.from(value, 'base64');
    if (digest.length === 32) return digest;
  }
  return null;
}
