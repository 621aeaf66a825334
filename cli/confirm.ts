// Asks a yes/no question on the terminal. Never without one: a script gets a usage error that
// names the flag to pass instead, so it cannot hang on a prompt nobody answers.
import { createInterface } from 'node:readline/promises';
import { stderr, stdin } from 'node:process';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

export async function confirm(question: string, flag = '--yes'): Promise<void> {
  if (!stdin.isTTY || !stderr.isTTY) {
    throw new CliError('E_CONFIRMATION_REQUIRED', `${question.replace(/\?$/, '')}: needs a confirmation, and there is no terminal to ask on`, {
      hint: `pass ${flag} to confirm`,
      exitCode: EXIT.usage,
    });
  }
  const rl = createInterface({ input: stdin, output: stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new CliError('E_CANCELLED', 'cancelled', { exitCode: EXIT.usage });
  } finally {
    rl.close();
  }
}
