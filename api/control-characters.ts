// Control characters in text that reaches Docker or the database. NUL can never pass: PostgreSQL
// text and jsonb cannot hold it and execve cannot carry it. Other C0 controls and DEL are refused
// too; free text (env values, command arguments, descriptions) keeps tab, LF and CR, which
// multi-line values such as certificates and shell scripts need. One-line text (names, paths)
// keeps none.

/** `text`: tab, LF and CR allowed; `line`: no control character at all. */
export type TextKind = 'text' | 'line';

const IN_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const IN_LINE = /[\u0000-\u001f\u007f]/;

/** Describes the first refused character of `value`, e.g. `a NUL character (U+0000) at character 4`; null when there is none. */
export function controlCharacterProblem(value: string, kind: TextKind = 'text'): string | null {
  const m = (kind === 'line' ? IN_LINE : IN_TEXT).exec(value);
  if (!m) return null;
  const code = m[0].charCodeAt(0);
  const name = code === 0 ? 'a NUL character' : code === 0x7f ? 'a DEL character' : 'a control character';
  const hex = code.toString(16).toUpperCase().padStart(4, '0');
  return `holds ${name} (U+${hex}) at ${where(value, m.index)}, which Pier does not accept${kind === 'text' ? ' (only tab, LF and CR are)' : ''}`;
}

export interface TextProblem {
  /** Where the string is, e.g. `cmd[1]` or `processes.web.env.TOKEN`; `(root)` for the value itself. */
  path: string;
  message: string;
}

/**
 * Every string in a JSON value (object keys included) holding a refused character, up to
 * `limit`, and how many there are in all.
 */
export function controlCharacterProblems(value: unknown, limit = 50): { problems: TextProblem[]; total: number } {
  const problems: TextProblem[] = [];
  let total = 0;
  const visit = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      const problem = controlCharacterProblem(v);
      if (problem) {
        total++;
        if (problems.length < limit) problems.push({ path: path || '(root)', message: problem });
      }
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => visit(item, `${path}[${i}]`));
    } else if (typeof v === 'object' && v !== null) {
      for (const [key, item] of Object.entries(v)) {
        const child = path ? `${path}.${printable(key)}` : printable(key);
        const problem = controlCharacterProblem(key, 'line');
        if (problem) {
          total++;
          if (problems.length < limit) problems.push({ path: child, message: `the key ${problem}` });
        }
        visit(item, child);
      }
    }
  };
  visit(value, '');
  return { problems, total };
}

/** A key as it can be shown in a path: control characters as `\uXXXX`, at most 100 characters. */
export function printable(text: string): string {
  const shown = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return shown.length > 100 ? `${shown.slice(0, 100)}…` : shown;
}

/** `character N` in one-line text, `line L, column C` in text with lines (1-based). */
function where(value: string, index: number): string {
  const before = value.slice(0, index);
  const lines = before.split('\n');
  if (lines.length === 1 && !value.includes('\n')) return `character ${index + 1}`;
  return `line ${lines.length}, column ${(lines.at(-1)?.length ?? 0) + 1}`;
}
