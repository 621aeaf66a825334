// The command reference of docs/cli.md, generated from the command definitions (between the
// `<!-- generated:commands -->` markers), so the docs say what `pier --help` says.
import { leafCommands, type ArgInfo, type CommandNode } from './command-tree.js';

export const REFERENCE_START = '<!-- generated:commands -->';
export const REFERENCE_END = '<!-- /generated:commands -->';

export function commandReference(root: CommandNode): string {
  const sections = leafCommands(root).map((cmd) => {
    const name = ['pier', ...cmd.path].join(' ');
    const flags = cmd.args.filter((a) => a.type !== 'positional');
    const out = [`### ${name}`, '', cmd.description, '', '```', usage(name, cmd.args), '```'];
    if (flags.length) {
      out.push('', '| flag | default | |', '|---|---|---|');
      for (const a of flags) out.push(`| \`${flagLabel(a)}\` | ${defaultLabel(a)} | ${cell(a.description)} |`);
    }
    return out.join('\n');
  });
  return `${REFERENCE_START}\n<!-- Generated from the command definitions in cli/commands/; test/docs/generated-docs.test.ts checks it (PIER_UPDATE_DOCS=1 rewrites it). -->\n\n${sections.join('\n\n')}\n\n${REFERENCE_END}`;
}

/** The document with its generated region replaced. */
export function withCommandReference(doc: string, root: CommandNode): string {
  const start = doc.indexOf(REFERENCE_START);
  const end = doc.indexOf(REFERENCE_END);
  if (start < 0 || end < start) throw new Error(`the document has no ${REFERENCE_START} … ${REFERENCE_END} region`);
  return doc.slice(0, start) + commandReference(root) + doc.slice(end + REFERENCE_END.length);
}

function usage(name: string, args: ArgInfo[]): string {
  const parts = [name];
  for (const a of args) {
    if (a.type === 'positional') parts.push(a.required ? `<${(a.valueHint ?? a.name).toUpperCase()}>` : `[${(a.valueHint ?? a.name).toUpperCase()}]`);
    else {
      const flag = a.type === 'boolean' ? `--${a.name}` : `--${a.name} ${hint(a)}`;
      parts.push(a.required ? flag : `[${flag}]`);
    }
  }
  return parts.join(' ');
}

function flagLabel(a: ArgInfo): string {
  const names = [...a.alias.map((s) => (s.length === 1 ? `-${s}` : `--${s}`)), `--${a.name}`].join(', ');
  return a.type === 'boolean' ? names : `${names} ${hint(a)}`;
}

function hint(a: ArgInfo): string {
  return a.valueHint ?? (a.options.length ? a.options.join('|') : a.name.toUpperCase());
}

function defaultLabel(a: ArgInfo): string {
  if (a.required) return 'required';
  if (a.type === 'boolean') return a.default === true ? 'on' : 'off';
  return a.default === undefined || a.default === '' ? '' : `\`${String(a.default)}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
