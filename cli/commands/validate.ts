// `pier validate`: check pier.toml without a server and without deploying. The one command that
// imports more than types from api/: the pure manifest validator (no I/O), so it reports exactly
// what the server would.
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import { formatManifestProblem, manifestProblems, parseManifest, type Manifest } from '../../api/manifest.js';
import { CliError } from '../cli-error.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, progress } from '../output.js';

export default defineCommand({
  meta: { name: 'validate', description: 'Check a manifest without deploying it (no server needed): exit 0 when valid, 2 when not' },
  args: {
    config: { type: 'string', alias: 'c', description: 'Manifest file', default: 'pier.toml', valueHint: 'FILE' },
    json: { type: 'boolean', description: 'Print { valid, file, manifest } or { valid: false, file, problems } on stdout', default: false },
  },
  async run({ args }) {
    const file = args.config;
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliError('E_MANIFEST_UNREADABLE', `cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, {
        hint: 'run this in the folder that holds pier.toml, or pass -c FILE',
        exitCode: EXIT.usage,
      });
    });
    let manifest: Manifest;
    try {
      manifest = parseManifest(text, file);
    } catch (err) {
      const found = manifestProblems(err);
      if (!found) throw err;
      const { problems, total } = found;
      if (args.json) printJson({ valid: false, file, problems, ...(total > problems.length ? { total } : {}) });
      else for (const p of problems) progress(formatManifestProblem(file, p));
      if (!args.json && total > problems.length) progress(`… and ${total - problems.length} more`);
      throw new CliError('E_MANIFEST_INVALID', `${file} is not a valid manifest: ${total} problem${total === 1 ? '' : 's'}${total > problems.length ? ` (the first ${problems.length} listed)` : ''}`, {
        hint: 'docs/manifest.md describes every key; docs/manifest.schema.json lets an editor check them as you type',
        exitCode: EXIT.usage,
      });
    }
    if (args.json) return printJson({ valid: true, file, manifest });
    printLine(`${file}: valid — app ${manifest.app}, ${summary(manifest)}`);
  },
});

function summary(m: Manifest): string {
  // No count: the app keeps its `pier scale` count, or runs one.
  const processes = Object.entries(m.processes).map(([name, p]) => (p.count === undefined ? `${name} (count not set)` : `${name}×${p.count}`));
  const endpoints = m.endpoints.map((e) => String(e.port));
  return `${processes.length} process${processes.length === 1 ? '' : 'es'} (${processes.join(', ')}), ${
    endpoints.length ? `endpoint${endpoints.length === 1 ? '' : 's'} on ${endpoints.join(', ')}` : 'no endpoints'
  }`;
}
