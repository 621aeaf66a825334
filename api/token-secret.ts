// Token secrets: generated once, shown once; only their SHA-256 hash is stored.
import { createHash, randomBytes } from 'node:crypto';

export function generateTokenSecret(): string {
  return `pier_${randomBytes(24).toString('base64url')}`;
}

export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
