// What counts as a refused character, where it is reported, and how many a JSON value holds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controlCharacterProblem, controlCharacterProblems } from '../../api/control-characters.js';

test('free text keeps tab, LF and CR and refuses NUL, other C0 controls and DEL', () => {
  assert.equal(controlCharacterProblem('line one\n\tline two\r\n'), null);
  assert.equal(controlCharacterProblem('é ✓ 🚀'), null);
  assert.match(controlCharacterProblem('a\u0000b') ?? '', /a NUL character \(U\+0000\) at character 2/);
  assert.match(controlCharacterProblem('x\u001b[31m') ?? '', /a control character \(U\+001B\) at character 2/);
  assert.match(controlCharacterProblem('x\u007f') ?? '', /a DEL character \(U\+007F\)/);
  assert.match(controlCharacterProblem('first\nsec\u0007ond') ?? '', /at line 2, column 4/);
});

test('one-line text refuses tab and line breaks too', () => {
  assert.match(controlCharacterProblem('/health\r\nX-Injected: 1', 'line') ?? '', /U\+000D/);
  assert.match(controlCharacterProblem('a\tb', 'line') ?? '', /U\+0009/);
  assert.equal(controlCharacterProblem('/health?x=1', 'line'), null);
});

test('every string of a JSON value is checked, keys included, with its path; the list is bounded', () => {
  const { problems, total } = controlCharacterProblems({ cmd: ['sh', '-c', 'echo \u0000'], env: { 'A\u0001': 'ok', B: 'x\u0002' }, n: 3, ok: true });
  assert.equal(total, 3);
  assert.deepEqual(problems.map((p) => p.path), ['cmd[2]', 'env.A\\u0001', 'env.B']);
  const many = controlCharacterProblems(Array.from({ length: 120 }, () => '\u0000'), 50);
  assert.equal(many.total, 120);
  assert.equal(many.problems.length, 50);
});
