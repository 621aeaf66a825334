// The per-/64 ip6tables rules earlier Pier versions put in FORWARD: only this installation's are
// recognised (exact shape, its prefix, not a subnet another installation holds), and, on a host
// where this test may change the firewall, removed from FORWARD while every other rule stays.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { legacyIsolationSubnets, removeLegacyIsolation } from '../../../api/private/legacy-isolation.js';
import { randomId } from '../../../api/ids.js';

const exec = promisify(execFile);

const rule = (subnet: string, comment = 'pier private network') => ['!', '-s', subnet, '-d', subnet, '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', comment, '-j', 'DROP'];
const line = (subnet: string, comment = 'pier private network') => `-A FORWARD ! -s ${subnet} -d ${subnet} -m conntrack --ctstate NEW -m comment --comment "${comment}" -j DROP`;

test('only the old rules of this installation are recognised', () => {
  const listing = [
    '-P FORWARD ACCEPT',
    line('fd70:6965:7200::/64'),
    line('fd70:6965:7200:1::/64'),
    line('fd70:6965:7200:2::/64'),
    line('fd11:2222:3333::/64'),
    line('fd70:6965:7200:3::/64', 'my own rule'),
    '-A FORWARD -d fd70:6965:7200:4::/64 -j DROP',
  ].join('\n');
  assert.deepEqual(legacyIsolationSubnets(listing, 'fd70:6965:7200::/48', new Set(['fd70:6965:7200:0002::/64'])), ['fd70:6965:7200::/64', 'fd70:6965:7200:1::/64']);
});

test('the old rules of this installation leave FORWARD; others stay', async (t) => {
  const can = await exec('ip6tables', ['-w', '5', '-S', 'FORWARD']).then(
    () => true,
    () => false,
  );
  if (!can) return t.skip('needs root and ip6tables');
  // A prefix of this test's own (fd00::/8), so no other test's or installation's rule is touched.
  // (No leading zero: ip6tables prints the shortest spelling, which the checks below compare.)
  const hex = `a${randomId(3).replace(/[^0-9a-f]/g, '0').padEnd(3, '0').slice(0, 3)}`;
  const prefix = `fd00:${hex}:7000::/48`;
  const ours = [`fd00:${hex}:7000::/64`, `fd00:${hex}:7000:1::/64`];
  const theirs = `fd00:${hex}:7000:2::/64`;
  const outside = `fd00:${hex}:7001::/64`;
  const notPier = `fd00:${hex}:7000:3::/64`;
  const added: string[][] = [...ours, ours[0] as string, theirs, outside].map((s) => rule(s));
  added.push(rule(notPier, 'not pier'));
  for (const r of added) await exec('ip6tables', ['-w', '5', '-I', 'FORWARD', '1', ...r]);
  t.after(async () => {
    for (const r of added) await exec('ip6tables', ['-w', '5', '-D', 'FORWARD', ...r]).catch(() => undefined);
  });

  const removed = await removeLegacyIsolation({ prefix, foreign: new Set([theirs]), log: pino({ level: 'silent' }) });
  assert.equal(removed, 3, 'both of ours, and the copy an older Pier inserted twice');
  const { stdout } = await exec('ip6tables', ['-w', '5', '-S', 'FORWARD']);
  for (const s of ours) assert.ok(!stdout.includes(`-d ${s} `), stdout);
  for (const s of [theirs, outside, notPier]) assert.ok(stdout.includes(`-d ${s} `), `${s} kept`);
});
