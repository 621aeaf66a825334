// The counter writer of the volume proofs: appends 1, 2, 3… to /data/log every 10 ms, resuming
// from the last line it finds, and notes each start in /data/starts. `counter` checks a log holds
// exactly 1..N (no gap, no torn line); `waitFor` polls a probe (bounded).
import assert from 'node:assert/strict';

export const COUNTER_WRITER =
  "trap 'exit 0' TERM; i=$(tail -n 1 /data/log 2>/dev/null); i=${i:-0}; echo start $i >> /data/starts; while true; do i=$((i+1)); echo $i >> /data/log; usleep 10000; done";

/** The counter lines of a log file; asserts they are exactly 1..N. */
export function counter(text: string, what: string): number {
  const lines = text.split('\n').filter((l) => l !== '');
  lines.forEach((l, i) => assert.equal(l, String(i + 1), `${what}: line ${i + 1} is "${l}" (gap or torn write)`));
  return lines.length;
}

/**
 * Polls `probe` every 100 ms until it answers non-null, at most `tries` times. An error counts as
 * null (a line being written reads torn), but the last one is in the failure's message.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | null>, tries = 300): Promise<T> {
  let last = 'the probe answered null';
  for (let i = 0; i < tries; i++) {
    let failed = false;
    const v = await probe().catch((err: unknown) => {
      failed = true;
      last = `the probe's last error: ${err instanceof Error ? err.message : String(err)}`;
      return null;
    });
    if (v !== null) return v;
    if (!failed) last = 'the probe answered null';
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`gave up waiting for ${what} (${last})`);
}

/** A manifest of one process `db` (running `script` under sh) with one volume `data` at /data, rolled out quickly. */
export function oneVolumeManifest(o: { app: string; image: string; script: string; version?: string; timeout?: string }): string {
  return `
app = "${o.app}"
image = "${o.image}"

[processes.db]
cmd = ["sh", "-c", ${JSON.stringify(o.script)}]
${o.version === undefined ? '' : `env = { VERSION = "${o.version}" }\n`}
[[volumes]]
name = "data"
process = "db"
path = "/data"

[deploy]
drain = "100ms"
timeout = "${o.timeout ?? '60s'}"
`;
}
