// What `pier status` tells a person, against a real server and Docker: each instance's health,
// a failed deploy's whole reason (its last log lines included), why a crash-looping app runs
// nothing, and hints that name the app. Also: an exec command with a NUL is a 422 naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';

async function deploy(server: PierServer, name: string, text: string) {
  const file = join(server.dir, `${name}.toml`);
  await writeFile(file, text);
  return runPier(['deploy', '-c', file], server.env);
}

async function appId(server: PierServer, app: string): Promise<string> {
  const r = await runPier(['status', '--app', app, '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as StatusView).app.id;
}

test('pier status shows health, a failed deploy’s whole reason, and why a crash-looping app runs nothing', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);

  await t.test('a health-checked instance shows its health in the table; an exec with a NUL is refused naming it', async () => {
    const r = await deploy(
      server,
      'steady',
      `app = "steady"\nimage = "${image}"\n[processes.web]\ncmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]\n[processes.web.check]\ntype = "exec"\ncommand = ["true"]\ninterval = "300ms"\n`,
    );
    const steadyId = await appId(server, 'steady');
    t.after(() => removeAppContainers(steadyId));
    assert.equal(r.code, 0, `${r.stderr}\n${server.stderr().slice(-2000)}`);
    let out = '';
    for (let i = 0; i < 40 && !/\bhealthy\b/.test(out); i++) {
      out = (await runPier(['status', '--app', 'steady'], server.env)).stdout;
      if (!/\bhealthy\b/.test(out)) await delay(250);
    }
    assert.match(out, /^INSTANCE\s+PROCESS\s+RELEASE\s+STATE\s+HEALTH\s+NODE\s+ADDRESS\s+STARTED\s+REASON$/m);
    assert.match(out, /^steady-web-\S+\s+web\s+v1\s+running\s+healthy\s+local\s/m);

    const status = JSON.parse((await runPier(['status', '--app', 'steady', '--json'], server.env)).stdout) as StatusView;
    const instance = status.instances[0]?.id ?? '';
    // On one engine every instance runs on the node "local"; describe names it too.
    assert.deepEqual(status.instances.map((i) => i.node), ['local']);
    const described = JSON.parse((await runPier(['describe', 'instance', instance, '--json'], server.env)).stdout) as { instance: { node: string } };
    assert.equal(described.instance.node, 'local');
    const res = await fetch(`${server.apiUrl}/v1/apps/steady/instances/${instance}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: ['echo', 'a\u0000b'] }),
    });
    const body = (await res.json()) as { error: { code: string; message: string; details: { path: string }[] } };
    assert.equal(res.status, 422, JSON.stringify(body));
    assert.equal(body.error.code, 'E_INVALID_CHARACTER');
    assert.deepEqual(body.error.details.map((d) => d.path), ['cmd[1]']);
    const events = JSON.parse((await runPier(['events', '--app', 'steady', '--json'], server.env)).stdout) as EventView[];
    assert.equal(events.filter((e) => e.type === 'instance.exec').length, 0, 'a refused exec is not run or recorded');
  });

  await t.test('a failed deploy: the hint names the app, and status prints the whole reason with the last log lines', async () => {
    const r = await deploy(server, 'dies', `app = "dies"\nimage = "${image}"\n[processes.web]\ncmd = ["sh", "-c", "echo first words; echo last words; exit 3"]\n`);
    const diesId = await appId(server, 'dies');
    t.after(() => removeAppContainers(diesId));
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /hint: `pier status --app dies` shows what runs now/);
    assert.doesNotMatch(r.stderr, /--app APP/);
    const out = (await runPier(['status', '--app', 'dies'], server.env)).stdout;
    assert.match(out, /^deployment dep_\S+ of v1: failed$/m);
    assert.match(out, /^ {2}dies-web-\S+ exited with code 3; last log lines:$/m);
    assert.match(out, /^ {4}first words$/m);
    assert.match(out, /^ {4}last words$/m);
    // The first release failed: nothing should run, so there is nothing to explain beyond the reason.
    assert.doesNotMatch(out, /no instance is running/);
  });

  await t.test('a crash-looping app: no instance runs, and status says why (latest exits, the crash loop)', async () => {
    const r = await deploy(server, 'crashy', `app = "crashy"\nimage = "${image}"\n[processes.web]\ncmd = ["sh", "-c", "sleep 4; echo giving up; exit 4"]\n`);
    const crashyId = await appId(server, 'crashy');
    t.after(() => removeAppContainers(crashyId));
    assert.equal(r.code, 0, r.stderr);
    // Bounded: three exits four seconds apart, then the backoff holds the next start back.
    let out = '';
    for (let i = 0; i < 240; i++) {
      out = (await runPier(['status', '--app', 'crashy'], server.env)).stdout;
      if (/crash loop/.test(out)) break;
      await delay(250);
    }
    assert.match(out, /^no instance is running, and 1 should \(web=1\)\.$/m, out);
    assert.match(out, /^latest exits:$/m);
    assert.match(out, /^ {2}\S+ {2}crashy-web-\S+ \(web v1\): .*code 4/m);
    assert.match(out, /^crash loop \(\S+\): crash loop: process web exited \d+ times in 60 s; next start in \d+ s$/m);
    assert.match(out, /`pier events --app crashy`/);
  });
});
