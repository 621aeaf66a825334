// The pure parts of pier doctor's host checks: which Node versions pass, how the open-files
// limit is read and judged, and when clocks disagree enough to say so.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkNode, checkOpenFiles, clockCheck } from '../../../cli/doctor/host-checks.js';

test('Node versions: the supported lines pass, older minors and other majors fail with the fix', () => {
  for (const v of ['20.19.0', '22.12.1', '24.0.0', '26.1.0']) assert.equal(checkNode(v).status, 'ok', v);
  for (const v of ['20.18.9', '21.7.0', '18.20.0', '22.11.0']) {
    const r = checkNode(v);
    assert.equal(r.status, 'fail', v);
    assert.match(r.fix ?? '', /Node\.js 24/);
  }
});

test('the open-files check judges the hard limit', async () => {
  const limits = (soft: string, hard: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                 ${hard}                 files\n`;
  assert.equal((await checkOpenFiles(limits('1024', '1048576'))).status, 'ok');
  assert.equal((await checkOpenFiles(limits('1024', '20000'))).status, 'warn');
  const low = await checkOpenFiles(limits('256', '256'));
  assert.equal(low.status, 'fail');
  assert.match(low.message, /about 128 connections/);
  assert.equal((await checkOpenFiles(limits('unlimited', 'unlimited'))).status, 'ok');
  assert.equal((await checkOpenFiles('')).status, 'skip');
});

test('clocks within 2 s agree; beyond, a warning says which is ahead', () => {
  assert.equal(clockCheck('clock', 1500, 'the API server').status, 'ok');
  const ahead = clockCheck('clock', 5000, 'the API server');
  assert.equal(ahead.status, 'warn');
  assert.match(ahead.message, /5\.0 s ahead/);
  assert.match(clockCheck('clock', -3000, 'the database server').message, /behind/);
});
