// The apps the soak deploys, as pier.toml text. Every deploy carries a new SOAK_REV, so it makes a
// new release. web serves the edge traffic (endpoint 9000 → an echo server, TCP check); worker
// has no endpoint (exec check) and is where commands are exec'd; crashy's process exits at once
// and ghost's image does not exist: their deploys must fail.

export const IMAGE = 'pier-test/busybox:1';
export const WEB_PORT = 9000;

/** Apps the soak deploys and follows. */
export const APPS = ['web', 'worker', 'crashy', 'ghost'] as const;

export function webManifest(rev: number, count?: number): string {
  return `app = "web"
image = "${IMAGE}"
env = { SOAK_REV = "${rev}" }

[processes.echo]
cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]
${count === undefined ? '' : `count = ${count}\n`}
[processes.echo.check]
type = "tcp"
port = 8080
interval = "1s"

[[endpoints]]
process = "echo"
port = ${WEB_PORT}
target = 8080

[deploy]
timeout = "60s"
drain = "2s"
`;
}

export function workerManifest(rev: number): string {
  return `app = "worker"
image = "${IMAGE}"
env = { SOAK_REV = "${rev}" }

[processes.loop]
cmd = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]

[processes.loop.check]
type = "exec"
command = ["true"]
interval = "2s"

[deploy]
timeout = "60s"
drain = "1s"
`;
}

export function crashyManifest(rev: number): string {
  return `app = "crashy"
image = "${IMAGE}"
env = { SOAK_REV = "${rev}" }

[processes.web]
cmd = ["sh", "-c", "echo soak crash $SOAK_REV >&2; exit 3"]

[deploy]
timeout = "30s"
`;
}

/** As a JSON manifest (the API takes either). */
export function ghostManifest(rev: number): Record<string, unknown> {
  return { app: 'ghost', image: 'pier-test/missing:1', env: { SOAK_REV: String(rev) }, processes: { web: { cmd: ['sleep', '1000'] } } };
}
