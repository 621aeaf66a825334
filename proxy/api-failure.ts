// One sentence for a failed request to the API, shared by the feed and the report: what an
// operator reads in the edge's /status `lastError` ("api unreachable: ECONNREFUSED").

export function describeApiFailure(err: unknown, timeoutMs?: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `api unreachable: no answer within ${timeoutMs ?? '?'} ms`;
  if (e?.message === 'fetch failed') return `api unreachable: ${e.cause?.code ?? e.cause?.message ?? 'network error'}`;
  return e?.message ?? String(err);
}
