// The commands as data: each command's path, description, flags and subcommands, read from the
// citty definitions. Completion scripts, docs/cli.md and the --json contract test use it, so
// none of them can forget a command.
import type { ArgDef, CommandDef } from 'citty';

export interface ArgInfo {
  name: string;
  type: 'boolean' | 'string' | 'enum' | 'positional';
  alias: string[];
  description: string;
  valueHint: string | undefined;
  default: string | boolean | undefined;
  required: boolean;
  options: string[];
}

export interface CommandNode {
  /** `['tokens', 'create']`; empty for the root. */
  path: string[];
  description: string;
  args: ArgInfo[];
  subCommands: CommandNode[];
}

type Resolvable<T> = T | Promise<T> | (() => T) | (() => Promise<T>);

export async function commandTree(cmd: CommandDef, path: string[] = []): Promise<CommandNode> {
  const meta = (await resolve(cmd.meta)) ?? {};
  const argDefs = ((await resolve(cmd.args)) ?? {}) as Record<string, ArgDef>;
  const subs = ((await resolve(cmd.subCommands)) ?? {}) as Record<string, Resolvable<CommandDef>>;
  const subCommands: CommandNode[] = [];
  for (const [name, sub] of Object.entries(subs)) {
    const def = await resolve(sub);
    if (def && !(await resolve(def.meta))?.hidden) subCommands.push(await commandTree(def, [...path, name]));
  }
  const args = Object.entries(argDefs).map(([name, a]): ArgInfo => ({
    name,
    type: a.type ?? 'string',
    alias: aliases(a),
    description: a.description ?? '',
    valueHint: a.valueHint,
    default: a.default,
    required: a.required === true || (a.type === 'positional' && a.required !== false && a.default === undefined),
    options: 'options' in a && Array.isArray(a.options) ? a.options : [],
  }));
  return { path, description: meta.description ?? '', args, subCommands };
}

/** Every command that runs something (no subcommands), depth first. */
export function leafCommands(node: CommandNode): CommandNode[] {
  return node.subCommands.length === 0 ? [node] : node.subCommands.flatMap(leafCommands);
}

function aliases(a: ArgDef): string[] {
  const alias = 'alias' in a ? a.alias : undefined;
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

async function resolve<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}
