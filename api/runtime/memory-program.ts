// What a container of the in-memory runtime "runs": a few busybox applets and `sh -c` scripts of
// simple statements, interpreted in process. The same commands run on the real busybox image, so
// one contract suite and one set of manifests serve both runtimes. Not a shell: `;`-separated
// statements, quotes, $VAR, `>&2`; no pipes, conditions or loops.

export interface ProgramIO {
  print(stream: 'stdout' | 'stderr', line: string): void;
  /** Aborts when the process is killed. */
  signal: AbortSignal;
  env: Record<string, string>;
  /** The container's files, for touch / cat / rm. */
  files: Map<string, string>;
  /** The container's memory limit, if any: a program that eats memory is OOM-killed. */
  memoryBytes: number | undefined;
  /**
   * A server program listens on a port of the container until it ends: what connections to the
   * container's address then meet (an echo, an HTTP answer, or a sink). Absent in an exec.
   */
  listen?: (port: number, kind: ListenKind) => () => void;
}

/** What answers on a port: `nc -l … -e cat` echoes, `httpd` answers GET, other `nc -l` reads only. */
export type ListenKind = 'echo' | 'http' | 'sink';

export interface Outcome {
  exitCode: number;
  oom?: boolean;
}

/** Applets a container can start with; anything else fails to start, as a missing binary does. */
const APPLETS = new Set(['sh', 'sleep', 'true', 'false', 'echo', 'nc', 'httpd', 'tail', 'cat', 'touch', 'rm', 'exit']);

/** Null when the command can start, else the engine's words for why not. */
export function startError(cmd: string[]): string | null {
  const name = cmd[0] ?? 'sh';
  if (APPLETS.has(name) && name !== 'exit') return null;
  return `exec: "${name}": stat ${name}: no such file or directory`;
}

/** Thrown inside a script by `exit N`. */
class Exit {
  constructor(readonly code: number) {}
}

export async function runProgram(cmd: string[], io: ProgramIO): Promise<Outcome> {
  try {
    return await applet(cmd, io, 'stdout');
  } catch (err) {
    if (err instanceof Exit) return { exitCode: err.code };
    throw err;
  }
}

async function applet(words: string[], io: ProgramIO, out: 'stdout' | 'stderr'): Promise<Outcome> {
  const [name = 'sh', ...args] = words;
  switch (name) {
    case 'true':
      return { exitCode: 0 };
    case 'false':
      return { exitCode: 1 };
    case 'echo':
      io.print(out, args.join(' '));
      return { exitCode: 0 };
    case 'exit':
      throw new Exit(Number(args[0] ?? 0) & 0xff);
    case 'sleep':
      await wait(Number(args[0] ?? 0) * 1000, io.signal);
      return { exitCode: 0 };
    case 'nc':
    case 'httpd': {
      // Servers run until they are stopped, listening where busybox would.
      const listening = listenerOf(name, args);
      const stop = listening && io.listen ? io.listen(listening.port, listening.kind) : () => undefined;
      try {
        await wait(Infinity, io.signal);
      } finally {
        stop();
      }
      return { exitCode: 0 };
    }
    case 'tail':
      if (args.includes('/dev/zero')) {
        // Reads a line that never ends into memory: with a limit it is OOM-killed, as on Docker.
        if (io.memoryBytes !== undefined) {
          await wait(50, io.signal);
          return { exitCode: 137, oom: true };
        }
        await wait(Infinity, io.signal);
      }
      return { exitCode: 0 };
    case 'cat': {
      const file = args[0];
      if (file === undefined) return { exitCode: 0 };
      const content = io.files.get(file);
      if (content === undefined) {
        io.print('stderr', `cat: can't open '${file}': No such file or directory`);
        return { exitCode: 1 };
      }
      if (content) for (const line of content.replace(/\n$/, '').split('\n')) io.print(out, line);
      return { exitCode: 0 };
    }
    case 'touch':
      for (const f of args) if (!io.files.has(f)) io.files.set(f, '');
      return { exitCode: 0 };
    case 'rm': {
      const force = args.includes('-f');
      let code = 0;
      for (const f of args.filter((a) => !a.startsWith('-'))) {
        if (!io.files.delete(f) && !force) {
          io.print('stderr', `rm: can't remove '${f}': No such file or directory`);
          code = 1;
        }
      }
      return { exitCode: code };
    }
    case 'sh':
      // Without -c, sh reads its standard input, which is empty: it exits at once.
      return args[0] === '-c' ? script(args[1] ?? '', io) : { exitCode: 0 };
    default:
      io.print('stderr', `sh: ${name}: not found`);
      return { exitCode: 127 };
  }
}

/** The port a busybox `nc -l[l|k] -p PORT [-e cat]` or `httpd [-p [IP:]PORT]` listens on, or null (a client). */
function listenerOf(name: string, args: string[]): { port: number; kind: ListenKind } | null {
  const value = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (name === 'httpd') {
    const p = Number((value('-p') ?? '80').split(':').at(-1));
    return Number.isInteger(p) && p > 0 ? { port: p, kind: 'http' } : null;
  }
  if (!args.some((a) => /^-[a-z]*l/.test(a))) return null;
  const p = Number(value('-p') ?? args.find((a) => /^\d+$/.test(a)));
  if (!Number.isInteger(p) || p <= 0) return null;
  return { port: p, kind: value('-e') === 'cat' ? 'echo' : 'sink' };
}

async function script(text: string, io: ProgramIO): Promise<Outcome> {
  let last: Outcome = { exitCode: 0 };
  for (const statement of statements(text)) {
    let words = statement.map((w) => expand(w, io.env));
    let out: 'stdout' | 'stderr' = 'stdout';
    if (words.at(-1) === '>&2' || words.at(-1) === '1>&2') {
      out = 'stderr';
      words = words.slice(0, -1);
    }
    if (words.length === 0) continue;
    last = await applet(words, io, out);
    if (last.oom) return last;
  }
  return last;
}

/** A word keeps a marker per character saying whether it was quoted with '…' (no expansion). */
interface Word {
  text: string;
  literal: boolean[];
}

function statements(text: string): Word[][] {
  const out: Word[][] = [];
  let words: Word[] = [];
  let word: Word | null = null;
  let quote: "'" | '"' | null = null;
  const push = (ch: string, literal: boolean) => {
    word ??= { text: '', literal: [] };
    word.text += ch;
    word.literal.push(literal);
  };
  const endWord = () => {
    if (word) words.push(word);
    word = null;
  };
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
      else push(ch, quote === "'");
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= { text: '', literal: [] };
    } else if (ch === ';' || ch === '\n') {
      endWord();
      out.push(words);
      words = [];
    } else if (ch === ' ' || ch === '\t') {
      endWord();
    } else {
      push(ch, false);
    }
  }
  endWord();
  out.push(words);
  return out;
}

function expand(word: Word, env: Record<string, string>): string {
  let result = '';
  for (let i = 0; i < word.text.length; i++) {
    const ch = word.text[i] as string;
    if (ch !== '$' || word.literal[i]) {
      result += ch;
      continue;
    }
    const m = /^\{?([A-Za-z_][A-Za-z0-9_]*)\}?/.exec(word.text.slice(i + 1));
    if (!m) {
      result += ch;
      continue;
    }
    result += env[m[1] as string] ?? '';
    i += m[0].length;
  }
  return result;
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    // Unref'd: a sleeping container, like a real one, does not keep the engine's process alive.
    const timer = Number.isFinite(ms) ? setTimeout(done, Math.max(0, ms)).unref() : undefined;
    function done() {
      signal.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal.addEventListener('abort', aborted, { once: true });
  });
}
