// A CI job for preview environments as docs/guide-preview-environments.md writes it: a bash script
// with no terminal drives a real `pier server` on Docker. Deploy pr-42 (JSON parsed), reach its
// endpoint, deploy again (same environment, new release), destroy it (containers, endpoints gone),
// destroy again (exit 0); `env destroy production` without --force changes nothing; a preview
// cannot read production's secrets; `env diff` finds an injected drift (exit 5); promote gives
// production staging's digest. (The reaper, on a fake clock: test/api/environments.test.ts.)
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer } from '../support/pier-process.js';
import { freePort } from '../support/tcp-client.js';

const exec = promisify(execFile);

const manifest = (image: string, port: number, stagingPort: number, greeting: string) => `app = "shop"
image = "${image}"

[env]
GREETING = "${greeting}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"]
count = 1

[[endpoints]]
process = "web"
port = ${port}
target = 8080

[deploy]
drain = "0s"

[env.staging]
ports = { "${port}" = ${stagingPort} }

[env.preview]
ttl = "24h"
`;

const script = String.raw`
set -u
pier() { node "$PIER_BIN" "$@"; }
expect() {
  local want=$1; shift
  "$@"; local got=$?
  echo "step: $* -> $got" >&2
  if [ "$got" != "$want" ]; then echo "FAIL: $* exited $got, wanted $want" >&2; exit 99; fi
}
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval(process.argv[1]))})' "$1"; }
# reach PORT: sends a line through the edge and waits (bounded) for its echo.
reach() { node -e '
  const net = require("net"); let tries = 0;
  const go = () => { const s = net.connect(+process.argv[1], "127.0.0.1"); let got = "";
    s.on("connect", () => s.write("hello preview\n"));
    s.on("data", (d) => { got += d; if (got.includes("hello preview")) { s.destroy(); process.exit(0); } });
    s.on("error", () => retry()); s.setTimeout(2000, () => { s.destroy(); retry(); }); };
  const retry = () => { if (++tries > 60) process.exit(1); setTimeout(go, 500); };
  go();' "$1"; }
# gone PORT: waits (bounded) until nothing accepts connections on it.
gone() { node -e '
  const net = require("net"); let tries = 0;
  const go = () => { const s = net.connect(+process.argv[1], "127.0.0.1");
    s.on("connect", () => { s.destroy(); if (++tries > 60) process.exit(1); setTimeout(go, 500); });
    s.on("error", () => process.exit(0)); };
  go();' "$1"; }

# Production, with a secret.
expect 0 pier deploy -c prod.toml --json > prod.json
expect 0 pier secrets set --app shop DATABASE_URL=postgres://prod-only-s3cret@db/shop --json > secret.json
test "$(json 'v.changed.join()' < secret.json)" = DATABASE_URL || { echo "FAIL: secret" >&2; exit 90; }

# The preview of pull request 42.
expect 0 pier deploy -c v1.toml --env pr-42 --ttl 2h --pr 42 --branch feature/cart --json > d1.json
test "$(json 'v.environment' < d1.json)" = pr-42 || { echo "FAIL: environment" >&2; exit 91; }
test "$(json 'v.state' < d1.json)" = succeeded || { echo "FAIL: d1 state" >&2; exit 92; }
PORT=$(json 'v.endpoints[0].port' < d1.json)
test -n "$(json 'v.expiresAt' < d1.json)" || exit 93
echo "preview port: $PORT digest: $(json 'v.digest' < d1.json)" >&2
expect 0 reach "$PORT"
# A preview starts with no secrets: production's are not readable from it.
expect 0 pier secrets list --app shop --env pr-42 --json > preview-secrets.json
test "$(json 'v.secrets.length' < preview-secrets.json)" = 0 || { echo "FAIL: preview sees secrets" >&2; exit 94; }

# Same environment, new release; same port.
expect 0 pier deploy -c v2.toml --env pr-42 --json > d2.json
test "$(json 'v.release' < d2.json)" = 2 || { echo "FAIL: d2 release" >&2; exit 95; }
test "$(json 'v.endpoints[0].port' < d2.json)" = "$PORT" || { echo "FAIL: port moved" >&2; exit 96; }
PIER_ENV=pr-42 pier status --app shop --json > preview-status.json || exit 97
expect 0 pier env list --json > envs.json
test "$(json 'v.environments.map(e => e.name).join()' < envs.json)" = pr-42,production || { echo "FAIL: env list" >&2; exit 98; }

# Destroy, twice.
expect 0 pier env destroy pr-42 --yes --json > destroyed.json
test "$(json 'v.destroyed' < destroyed.json)" = true || exit 80
expect 0 gone "$PORT"
expect 0 pier env destroy pr-42 --yes --json > again.json
test "$(json 'v.destroyed' < again.json)" = false || exit 81

# Production is guarded: without --force nothing happens, and never without --yes on no terminal.
expect 2 pier env destroy production --yes
expect 2 pier env destroy production --force
expect 0 pier status --app shop --json > prod-status.json

# Parity: staging runs another image; a scale there is drift; promote refuses, then (allowed) runs staging's digest in production.
expect 0 pier deploy -c staging.toml --env staging --json > staging.json
expect 0 pier secrets copy --app shop --from production --to staging DATABASE_URL --json > copied.json
# Before promote the digests differ: drift (exit 5), and nothing else is.
expect 5 pier env diff staging production --json > diff1.json
test "$(json 'v.differences.filter(d => d.kind === "drift").map(d => d.field).join()' < diff1.json)" = digest || { echo "FAIL: diff1" >&2; exit 82; }
PIER_ENV=staging expect 0 pier scale web=2 --app shop --json > /dev/null
expect 5 pier env diff staging production --json > diff2.json
test "$(json 'v.differences.find(d => d.field === "count.web").kind' < diff2.json)" = drift || exit 83
expect 1 pier promote --from staging --to production --json
expect 0 pier promote --from staging --to production --allow-drift --json > promote.json
test "$(json 'v.deploys[0].release.imageDigest' < promote.json)" = "$(json 'v.digest' < staging.json)" || { echo "FAIL: promote digest" >&2; exit 84; }
echo done >&2
`;

test('a CI script with no terminal deploys, reaches, redeploys and destroys a preview; production stays guarded; diff and promote', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const other = await ensureBusyboxImage('pier-test/busybox:env17');
  // Free ports (the machine is shared): one for production, one for staging, a range of one for the preview.
  const [port, stagingPort, previewPort] = [await freePort(), await freePort(), await freePort()] as [number, number, number];
  const server = await startPierServer(t, { PIER_PREVIEW_PORTS: `${previewPort}-${previewPort}` });
  const dir = server.dir;
  await writeFile(join(dir, 'prod.toml'), manifest(image, port, stagingPort, 'prod'));
  await writeFile(join(dir, 'v1.toml'), manifest(image, port, stagingPort, 'v1'));
  await writeFile(join(dir, 'v2.toml'), manifest(image, port, stagingPort, 'v2'));
  await writeFile(join(dir, 'staging.toml'), manifest(other, port, stagingPort, 'prod'));

  const job = spawn('bash', ['-c', script], { cwd: dir, env: { ...server.env, PIER_BIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  job.stdout.resume();
  job.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      job.kill('SIGKILL');
      resolve(null);
    }, 300_000);
    job.once('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  // Every app the script made, in every environment, is cleaned up by its id.
  for (const env of ['production', 'staging']) {
    const r = await runPier(['status', '--app', 'shop', '--json'], { ...server.env, PIER_ENV: env });
    if (r.code === 0) {
      const id = (JSON.parse(r.stdout) as { app: { id: string } }).app.id;
      t.after(() => removeAppContainers(id));
    }
  }
  const preview = await readPreviewAppId(dir);
  if (preview) t.after(() => removeAppContainers(preview));
  assert.equal(code, 0, `the CI script ${code === null ? 'did not finish (a prompt?)' : `failed with ${code}`}:\n${stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  assert.match(stderr, /hint: pass --yes --confirm production|hint: .*--force --confirm production/);

  // The preview's containers are gone (by its app id and environment label).
  assert.ok(preview);
  const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${preview}`, '--filter', 'label=dev.pier.environment=pr-42']);
  assert.equal(stdout.trim(), '', 'the preview left containers behind');
  // The secret never reached the server's log.
  assert.ok(!server.stdout().includes('prod-only-s3cret') && !server.stderr().includes('prod-only-s3cret'));
});

async function readPreviewAppId(dir: string): Promise<string | null> {
  const { readFile } = await import('node:fs/promises');
  try {
    return (JSON.parse(await readFile(join(dir, 'preview-status.json'), 'utf8')) as { app: { id: string } }).app.id;
  } catch {
    return null;
  }
}
