// `pier completion bash|zsh|fish`: print a completion script made from the command definitions.
import { defineCommand } from 'citty';
import { CliError } from '../cli-error.js';
import { commandTree } from '../command-tree.js';
import { completionScript, SHELLS, type Shell } from '../completion-script.js';
import { EXIT } from '../exit-codes.js';
import { writeRaw } from '../output.js';

export default defineCommand({
  meta: { name: 'completion', description: 'Print a shell completion script: source <(pier completion bash)' },
  args: { shell: { type: 'positional', description: 'bash | zsh | fish', valueHint: 'SHELL', required: true } },
  async run({ args }) {
    const shell = String(args.shell) as Shell;
    if (!SHELLS.includes(shell)) throw new CliError('E_USAGE', `no completion for "${shell}"`, { hint: `use one of: ${SHELLS.join(', ')}`, exitCode: EXIT.usage });
    // The root command lives in main.ts, which has finished loading by the time a command runs.
    const { main } = await import('../main.js');
    writeRaw(completionScript(shell, await commandTree(main)));
  },
});
