// .dockerignore matching, table-driven against what the Docker CLI leaves out of a context.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDockerIgnore, parseDockerIgnore } from '../../cli/docker-ignore.js';

const cases: { rules: string[]; path: string; ignored: boolean }[] = [
  { rules: ['*.log'], path: 'app.log', ignored: true },
  { rules: ['*.log'], path: 'logs/app.log', ignored: false },
  { rules: ['**/*.log'], path: 'logs/deep/app.log', ignored: true },
  { rules: ['**/*.log'], path: 'app.log', ignored: true },
  { rules: ['node_modules'], path: 'node_modules/x/index.js', ignored: true },
  { rules: ['/node_modules/'], path: 'node_modules', ignored: true },
  { rules: ['./tmp'], path: 'tmp/a', ignored: true },
  { rules: ['tmp'], path: 'src/tmp', ignored: false },
  { rules: ['*.md', '!README.md'], path: 'README.md', ignored: false },
  { rules: ['*.md', '!README.md'], path: 'CHANGES.md', ignored: true },
  { rules: ['!README.md', '*.md'], path: 'README.md', ignored: true },
  { rules: ['# comment', '', 'secret?.txt'], path: 'secret1.txt', ignored: true },
  { rules: ['secret?.txt'], path: 'secret12.txt', ignored: false },
  { rules: ['data/[ab].bin'], path: 'data/a.bin', ignored: true },
  { rules: ['data/[!ab].bin'], path: 'data/a.bin', ignored: false },
  { rules: ['a.b'], path: 'axb', ignored: false },
  { rules: ['docs/**'], path: 'docs/x/y.md', ignored: true },
  { rules: ['docs/**'], path: 'docsx', ignored: false },
];

for (const c of cases) {
  test(`${JSON.stringify(c.rules)} ${c.ignored ? 'leaves out' : 'keeps'} ${c.path}`, () => {
    assert.equal(createDockerIgnore(parseDockerIgnore(c.rules)).ignores(c.path), c.ignored);
  });
}
