// A self-signed certificate for the API when it listens off loopback and the operator gave none:
// an EC P-256 key and an X.509 v3 certificate naming the listen address and host name. Clients do
// not trust it through a CA; they pin its SHA-256 fingerprint (`pier login --fingerprint`).
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { bitString, boolean, explicit, implicit, octetString, oid, sequence, set, time, unsignedInteger, utf8String } from './der.js';

export interface SelfSignedCertificate {
  certPem: string;
  keyPem: string;
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const COMMON_NAME = '2.5.4.3';
const SUBJECT_ALT_NAME = '2.5.29.17';
const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';
const EXT_KEY_USAGE = '2.5.29.37';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
/** Long-lived: clients pin the fingerprint, so a renewal would make every one of them log in again. */
const VALIDITY_YEARS = 10;

/** `names`: host names and IP addresses for the subjectAltName; the first is also the subject's CN. */
export function createSelfSignedCertificate(names: string[], now = new Date()): SelfSignedCertificate {
  if (names.length === 0) throw new Error('a certificate needs at least one name');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const algorithm = sequence(oid(ECDSA_WITH_SHA256));
  const name = sequence(set(sequence(oid(COMMON_NAME), utf8String(`pier api ${names[0]}`))));
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  const altNames = sequence(...unique(names).map(generalName));
  const extensions = sequence(
    sequence(oid(BASIC_CONSTRAINTS), boolean(true), octetString(sequence())),
    // digitalSignature: what an ECDHE-ECDSA handshake needs of the key.
    sequence(oid(KEY_USAGE), boolean(true), octetString(bitStringBits(0x80, 7))),
    sequence(oid(EXT_KEY_USAGE), octetString(sequence(oid(SERVER_AUTH)))),
    sequence(oid(SUBJECT_ALT_NAME), octetString(altNames)),
  );
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))),
    unsignedInteger(serial),
    algorithm,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, extensions),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  return { certPem: pem('CERTIFICATE', der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** dNSName [2] or iPAddress [7] (4 or 16 bytes). */
function generalName(value: string): Buffer {
  const family = isIP(value);
  if (family === 4) return implicit(7, Buffer.from(value.split('.').map(Number)));
  if (family === 6) return implicit(7, Buffer.from(ipaddr.parse(value).toByteArray()));
  return implicit(2, Buffer.from(value, 'ascii'));
}

/** A BIT STRING holding one byte of which `unused` low bits are padding. */
function bitStringBits(byte: number, unused: number): Buffer {
  return Buffer.from([0x03, 0x02, unused, byte]);
}

function unique(names: string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase()))];
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
