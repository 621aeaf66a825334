// .dockerignore rules as the Docker CLI applies them: one pattern a line (Go filepath.Match, plus
// `**` for any number of folders), `#` comments, `!` exceptions, the last matching rule wins,
// and a rule that matches a folder leaves out everything under it. Paths are context-relative
// with "/" separators.

export interface IgnoreRule {
  negate: boolean;
  regex: RegExp;
}

export interface DockerIgnore {
  ignores(path: string): boolean;
}

/** Lines of a .dockerignore file (or [build] ignore patterns) into rules. */
export function parseDockerIgnore(lines: readonly string[]): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of lines) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1).trim();
    const pattern = cleanPath(line);
    if (pattern === '') continue;
    rules.push({ negate, regex: new RegExp(`^${toRegex(pattern)}$`) });
  }
  return rules;
}

export function createDockerIgnore(rules: readonly IgnoreRule[]): DockerIgnore {
  return {
    ignores(path) {
      const clean = cleanPath(path);
      // A path is left out when it, or a folder it is in, matches (the last rule decides).
      const parents = clean.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
      let ignored = false;
      for (const rule of rules) {
        if (parents.some((p) => rule.regex.test(p))) ignored = !rule.negate;
      }
      return ignored;
    },
  };
}

/** Like Go's filepath.Clean on a relative path: no leading "/" or "./", no "//", "." and ".." resolved. */
function cleanPath(path: string): string {
  const out: string[] = [];
  for (const part of path.replace(/\\/g, '/').split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

function toRegex(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // "**/" matches no folder or any number of them; a trailing "**" anything.
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        const body = pattern.slice(i + 1, end).replace(/^\^/, '!');
        out += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i++;
      out += escape(pattern[i] as string);
    } else out += escape(c);
  }
  return out;
}

function escape(c: string): string {
  return /[.+^${}()|[\]\\]/.test(c) ? `\\${c}` : c;
}
