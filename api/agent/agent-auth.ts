// Every request to a node agent carries `Authorization: Bearer TOKEN`, the token the agent was
// started with (--token-file, PIER_AGENT_TOKEN). Compared in constant time (both sides hashed to
// the same length first), so the answer's timing says nothing about how much of a guess was right.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { PierError } from '../pier-error.js';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

export function agentAuth(token: string): MiddlewareHandler {
  const expected = digest(token);
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) {
      throw new PierError('E_AGENT_UNAUTHENTICATED', 'this node agent needs a token', { status: 401, hint: 'send Authorization: Bearer TOKEN, the token the agent was started with' });
    }
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(header);
    if (!m || !timingSafeEqual(digest(m[1] as string), expected)) {
      throw new PierError('E_AGENT_UNAUTHENTICATED', 'the token is not this node agent\'s', { status: 401, hint: 'give the API server the token file the agent was started with (--node-agent-token-file)' });
    }
    await next();
  };
}
