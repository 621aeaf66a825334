// The last-resort handlers in real processes: an unhandled rejection is logged and the process
// goes on; an uncaught exception ends it with exit code 70 after a fatal log line; the one known
// library defect (postgres.js writing to a closed socket from a timer, reproduced here for real
// against PostgreSQL) is logged and tolerated; a look-alike from elsewhere is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDbUrl } from '../support/test-db.js';

const LAST_RESORT = new URL('../../api/last-resort.js', import.meta.url).href;
const POSTGRES = import.meta.resolve('postgres');
const PINO = import.meta.resolve('pino');

/** Runs `body` as an ES module with the last-resort handlers installed; resolves with its exit code and log lines. */
async function runWithLastResort(dir: string, name: string, body: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; logs: { level: number; msg: string; known?: string; err?: { message?: string } }[]; stdout: string }> {
  const file = join(dir, `${name}.mjs`);
  await writeFile(
    file,
    `import pino from ${JSON.stringify(PINO)};
import { installLastResort } from ${JSON.stringify(LAST_RESORT)};
const log = pino({ level: 'info' }, pino.destination(2));
installLastResort({ log, exit: (code) => process.exit(code) });
${body}
`,
  );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not end in 60 s\n${out}\n${err}`));
    }, 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const logs = err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string });
      resolve({ code, logs, stdout: out });
    });
  });
}

test('the last-resort handlers keep a process up after a stray rejection and stop it after an unknown exception', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-last-resort-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const rejected = await runWithLastResort(dir, 'rejection', `Promise.reject(new Error('nobody awaited me'));
setTimeout(() => { console.log('still here'); }, 200);`);
  assert.equal(rejected.code, 0);
  assert.equal(rejected.stdout.trim(), 'still here');
  const logged = rejected.logs.find((l) => l.msg.startsWith('unhandled promise rejection'));
  assert.equal(logged?.err?.message, 'nobody awaited me');
  assert.equal(logged?.level, 50);

  const thrown = await runWithLastResort(dir, 'exception', `setTimeout(() => { throw new Error('a bug'); }, 10);
setTimeout(() => { console.log('should not get here'); }, 2000);`);
  assert.equal(thrown.code, 70);
  assert.equal(thrown.stdout, '');
  const fatal = thrown.logs.find((l) => l.level === 60);
  assert.match(fatal?.msg ?? '', /uncaught exception; stopping/);
  assert.equal(fatal?.err?.message, 'a bug');

  // The same message from anywhere but postgres.js's nextWrite is not the known defect.
  const lookalike = await runWithLastResort(dir, 'lookalike', `setImmediate(function nextWrite() { const socket = null; socket.write('x'); });`);
  assert.equal(lookalike.code, 70);
});

test('the known postgres.js defect, reproduced against PostgreSQL, is logged and tolerated', async (t) => {
  const url = await createTestDbUrl(t);
  if (!url) {
    t.skip('needs DATABASE_URL (PostgreSQL)');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'pier-last-resort-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A query on a reserved connection whose backend was killed: postgres.js 3.4.9 writes it from a
  // setImmediate to a socket it already set to null (porsager/postgres#1208).
  const r = await runWithLastResort(
    dir,
    'postgres',
    `const { default: postgres } = await import(${JSON.stringify(POSTGRES)});
const sql = postgres(process.env.PIER_TEST_URL, { max: 2, onnotice: () => {} });
const killer = postgres(process.env.PIER_TEST_URL, { max: 1 });
const conn = await sql.reserve();
const [{ pid }] = await conn\`select pg_backend_pid() as pid\`;
await killer\`select pg_terminate_backend(\${pid})\`;
await new Promise((r) => setTimeout(r, 500));
conn\`select 1\`.catch(() => {});
await new Promise((r) => setTimeout(r, 500));
const [{ n }] = await killer\`select 2 as n\`;
console.log('still here', n);
await killer.end({ timeout: 1 });
process.exit(0);`,
    { PIER_TEST_URL: url },
  );
  assert.equal(r.code, 0, JSON.stringify(r.logs));
  assert.equal(r.stdout.trim(), 'still here 2');
  const tolerated = r.logs.find((l) => l.msg.startsWith('uncaught exception from a known library defect'));
  assert.ok(tolerated, `the defect was reproduced and recognised: ${JSON.stringify(r.logs)}`);
  assert.match(tolerated.known ?? '', /porsager\/postgres#1154/);
});
