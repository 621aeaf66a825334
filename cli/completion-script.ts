// Shell completion scripts for bash, zsh and fish, generated from the command tree: subcommands
// and their flags, nothing hand-written that could fall behind.
import type { CommandNode } from './command-tree.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(shell: Shell, root: CommandNode): string {
  return shell === 'fish' ? fish(root) : shell === 'zsh' ? `#compdef pier\nautoload -U +X bashcompinit && bashcompinit\n${bash(root)}` : bash(root);
}

function all(node: CommandNode): CommandNode[] {
  return [node, ...node.subCommands.flatMap(all)];
}

function words(node: CommandNode): string[] {
  const flags = node.args.filter((a) => a.type !== 'positional').flatMap((a) => [`--${a.name}`, ...a.alias.map((s) => (s.length === 1 ? `-${s}` : `--${s}`))]);
  return [...node.subCommands.map((s) => s.path[s.path.length - 1] as string), ...flags, '--help'];
}

function bash(root: CommandNode): string {
  const nodes = all(root);
  const paths = nodes.filter((n) => n.path.length > 0).map((n) => n.path.join('/'));
  const cases = nodes.map((n) => `    "${n.path.join('/')}") opts="${words(n).join(' ')}${n.path.length === 0 ? ' --version' : ''}" ;;`);
  return `# pier completion for bash: source it, e.g. \`source <(pier completion bash)\`
_pier() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w opts
  local cmds=" ${paths.join(' ')} "
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$cmds" in *" \${path:+$path/}$w "*) path="\${path:+$path/}$w" ;; esac
  done
  case "$path" in
${cases.join('\n')}
    *) opts="--help" ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -F _pier pier
`;
}

function fish(root: CommandNode): string {
  const lines = ['# pier completion for fish: `pier completion fish > ~/.config/fish/completions/pier.fish`', 'complete -c pier -f'];
  for (const node of all(root)) {
    const children = node.subCommands.map((s) => s.path[s.path.length - 1] as string);
    const seen = node.path.map((p) => `__fish_seen_subcommand_from ${p}`);
    const here = node.path.length === 0 ? ['__fish_use_subcommand'] : seen;
    const notDeeper = children.length ? [`not __fish_seen_subcommand_from ${children.join(' ')}`] : [];
    const condition = [...here, ...(node.path.length ? notDeeper : [])].join('; and ');
    for (const sub of node.subCommands) {
      lines.push(`complete -c pier -n ${quote(condition)} -a ${sub.path[sub.path.length - 1]} -d ${quote(sub.description)}`);
    }
    if (node.path.length === 0) continue;
    for (const a of node.args.filter((x) => x.type !== 'positional')) {
      const short = a.alias.filter((s) => s.length === 1).map((s) => ` -s ${s}`).join('');
      const takesValue = a.type === 'boolean' ? '' : ' -r';
      lines.push(`complete -c pier -n ${quote(seen.join('; and '))} -l ${a.name}${short}${takesValue} -d ${quote(a.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function quote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
