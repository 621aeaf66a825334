// A CI job as people write them: a bash script with no terminal (stdin closed, no TTY) drives a
// real `pier server` — validate, deploy, read `status --json` with a JSON tool, deploy again,
// a failing deploy, roll back — and every step must end with its documented exit code, with no
// prompt (the script has to finish on its own, within a bounded time).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer } from '../support/pier-process.js';

const manifest = (image: string, port: number, greeting: string, cmd = `["sh", "-c", "trap 'exit 0' TERM; echo ${greeting}; nc -ll -p 8080 -e cat & wait"]`) => `app = "ci"
image = "${image}"

[processes.web]
cmd = ${cmd}
count = 1

[[endpoints]]
process = "web"
port = ${port}
target = 8080
`;

const script = String.raw`
set -u
pier() { node "$PIER_BIN" "$@"; }
# expect CODE COMMAND…: runs it, logs the exit code, stops the job on any other code.
expect() {
  local want=$1; shift
  "$@"; local got=$?
  echo "step: $* -> $got" >&2
  if [ "$got" != "$want" ]; then echo "FAIL: $* exited $got, wanted $want" >&2; exit 99; fi
}
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval(process.argv[1]))})' "$1"; }

expect 2 pier validate -c typo.toml
expect 0 pier validate -c v1.toml
expect 0 pier deploy -c v1.toml --json > deploy1.json
test "$(json 'v.state' < deploy1.json)" = succeeded || { echo "FAIL: deploy1 state" >&2; exit 98; }

# Wait (bounded) until the instance runs, reading status --json with a JSON tool.
for i in $(seq 1 60); do
  pier status --app ci --json > status.json || exit 97
  [ "$(json 'v.instances.filter(i => i.state === "running").length' < status.json)" = 1 ] && break
  sleep 0.5
done
test "$(json 'v.release.version' < status.json)" = 1 || { echo "FAIL: v1 not current" >&2; exit 96; }

expect 0 pier deploy -c v2.toml --json > deploy2.json
test "$(json 'v.release' < deploy2.json)" = 2 || { echo "FAIL: v2" >&2; exit 95; }

expect 3 pier deploy -c broken.toml --json > broken.json
test "$(json 'v.state' < broken.json)" = failed || { echo "FAIL: broken state" >&2; exit 94; }

expect 0 pier rollback 1 --app ci --json > rollback.json
expect 0 pier status --app ci --json > final.json
expect 1 pier status --app no-such-app
expect 4 env PIER_TOKEN=pier_not_a_token node "$PIER_BIN" status --app ci
expect 2 pier tokens revoke tok_whatever
expect 2 pier deploy --no-such-flag-value -c missing.toml
echo done >&2
`;

test('a CI script with no terminal gets the documented exit code from every step', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = 9100 + Math.floor(Math.random() * 800);
  const dir = server.dir;
  await writeFile(join(dir, 'typo.toml'), manifest(image, port, 'v1').replace('[processes.web]', '[proccesses.web]'));
  await writeFile(join(dir, 'v1.toml'), manifest(image, port, 'v1'));
  await writeFile(join(dir, 'v2.toml'), manifest(image, port, 'v2'));
  await writeFile(join(dir, 'broken.toml'), manifest(image, port, 'v3', '["sh", "-c", "echo missing DATABASE_URL >&2; exit 1"]'));

  const job = spawn('bash', ['-c', script], { cwd: dir, env: { ...server.env, PIER_BIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  job.stdout.resume();
  job.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      job.kill('SIGKILL');
      resolve(null);
    }, 240_000);
    job.once('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const after = await runPier(['status', '--app', 'ci', '--json'], server.env);
  if (after.code === 0) {
    const appId = (JSON.parse(after.stdout) as StatusView).app.id;
    t.after(() => removeAppContainers(appId));
  }
  assert.equal(code, 0, `the CI script ${code === null ? 'did not finish (a prompt?)' : `failed with ${code}`}:\n${stderr}\nserver log:\n${server.stderr().slice(-2000)}`);
  assert.match(stderr, /typo\.toml:4:2: unknown key "proccesses" — did you mean "processes"\?/);
  assert.match(stderr, /missing DATABASE_URL/, 'the failing deploy said why');
  assert.match(stderr, /hint: pass --yes/);

  const final = JSON.parse(after.stdout) as StatusView;
  assert.equal(final.release?.version, 4, 'v1 v2, failed v3, rollback → v4');
  assert.equal(final.deployment?.state, 'succeeded');
});
