// Identifiers: short random ids with a type prefix, and readable instance ids.
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function randomId(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

export function newId(prefix: string): string {
  return `${prefix}_${randomId(12)}`;
}

/** `<app>-<process>-<5 random>`: also the container name, so it reads well in `docker ps`. */
export function newInstanceId(app: string, process: string): string {
  return `${app}-${process}-${randomId(5)}`;
}
