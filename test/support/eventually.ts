// Bounded polling for tests that wait on asynchronous effects (sockets closing, counters settling)
// without asserting any timing: retries `check` a fixed number of times, then fails with `what`.

export async function eventually(check: () => boolean, what: string, tries = 200, intervalMs = 10): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`gave up waiting for: ${what}`);
}
