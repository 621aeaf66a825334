// Ends a command with an exit code of its own and no error message: `pier exec` passes on the
// remote command's code this way (citty drops subcommands' return values). Only main reads it.
export class CommandExit {
  constructor(readonly code: number) {}
}
