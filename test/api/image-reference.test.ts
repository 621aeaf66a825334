// Docker's image reference grammar, table-driven: what the engine accepts passes, the rest is
// refused with a reason (and so never reaches the engine).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageReferenceProblem } from '../../api/image-reference.js';

const HEX = 'a'.repeat(64);

test('image references the engine accepts pass', () => {
  for (const ref of [
    'busybox',
    'local/echo:1',
    'library/nginx:1.27-alpine',
    'registry.example.com/team/app:v2',
    'registry.example.com:5000/team/app:v2',
    'localhost/app',
    'localhost:5000/a/b/c',
    '[::1]:5000/app:latest',
    'Registry.Example.com/app',
    'a__b/c.d-e:TAG_x.1',
    `app@sha256:${HEX}`,
    `registry.example.com/app:1@sha256:${HEX}`,
    `sha256:${HEX}`,
  ]) {
    assert.equal(imageReferenceProblem(ref), null, ref);
  }
});

test('anything else is refused with a reason', () => {
  for (const ref of ['x;rm -rf /', 'a b', 'app:', ':tag', '-app', 'app-', 'a___b', 'app//x', '../etc/passwd', 'app@sha256:short', 'local/echo:1\n', 'app\u0000', `${'a'.repeat(256)}`, 'app:-tag']) {
    assert.match(imageReferenceProblem(ref) ?? '', /must be an image reference|must have a repository name/, JSON.stringify(ref));
  }
});

test('an uppercase repository path is named as the problem', () => {
  for (const ref of ['Upper', 'UPPER/case:1', 'team/App']) {
    assert.match(imageReferenceProblem(ref) ?? '', /lowercase repository name/, ref);
  }
});
