// Where each key of a TOML document is written: a small scanner that maps key paths (tables,
// arrays of tables, dotted keys, inline tables, array items) to line and column, because the
// TOML parser gives positions only for syntax errors. Run it on text that already parsed.

export interface TomlPosition {
  line: number;
  column: number;
}

export interface TomlEntry {
  /** Where the key or the `[table]` header starts. */
  key: TomlPosition;
  /** Where its value starts (absent for tables). */
  value?: TomlPosition;
}

export type TomlPath = readonly (string | number)[];

export interface TomlPositionIndex {
  /** The entry written exactly at `path`, if any. */
  get(path: TomlPath): TomlEntry | undefined;
  /** The entry at `path`, else at its nearest written ancestor, with how many levels up it was. */
  nearest(path: TomlPath): { entry: TomlEntry; up: number } | undefined;
}

const SEP = '\u0000';
const keyOf = (path: TomlPath) => path.map(String).join(SEP);

export function indexTomlPositions(text: string): TomlPositionIndex {
  const entries = new Map<string, TomlEntry>();
  try {
    new Scanner(text, entries).document();
  } catch {
    // Text that did not parse: keep what was indexed so far.
  }
  return {
    get: (path) => entries.get(keyOf(path)),
    nearest(path) {
      for (let n = path.length; n >= 0; n--) {
        const entry = entries.get(keyOf(path.slice(0, n)));
        if (entry) return { entry, up: path.length - n };
      }
      return undefined;
    },
  };
}

class Scanner {
  private i = 0;
  private line = 1;
  private column = 1;
  /** Arrays of tables seen so far → how many tables each holds. */
  private readonly arrays = new Map<string, number>();

  constructor(
    private readonly text: string,
    private readonly entries: Map<string, TomlEntry>,
  ) {}

  document(): void {
    let table: (string | number)[] = [];
    for (;;) {
      this.skipBlank(true);
      if (this.i >= this.text.length) return;
      const start = this.here();
      if (this.peek() === '[') {
        const isArray = this.text[this.i + 1] === '[';
        this.advance(isArray ? 2 : 1);
        const { parts, starts } = this.key();
        this.skipBlank(false);
        this.advance(isArray ? 2 : 1);
        table = this.resolve(parts, isArray);
        this.record(table, { key: start });
        this.recordParents([], table, starts);
      } else {
        const { parts, starts } = this.key();
        this.skipBlank(false);
        this.expect('=');
        this.recordParents(table, parts, starts);
        this.value([...table, ...parts], start);
      }
    }
  }

  /** Table header keys, with the current index inserted after each array of tables they pass. */
  private resolve(keys: string[], isArray: boolean): (string | number)[] {
    const out: (string | number)[] = [];
    keys.forEach((k, n) => {
      out.push(k);
      const count = this.arrays.get(keyOf(out));
      if (n === keys.length - 1 && isArray) {
        this.arrays.set(keyOf(out), (count ?? 0) + 1);
        out.push(count ?? 0);
      } else if (count !== undefined) {
        out.push(count - 1);
      }
    });
    return out;
  }

  /** A dotted key: bare, "basic" or 'literal' parts, and where each starts. */
  private key(): { parts: string[]; starts: TomlPosition[] } {
    const parts: string[] = [];
    const starts: TomlPosition[] = [];
    for (;;) {
      this.skipBlank(false);
      starts.push(this.here());
      const c = this.peek();
      if (c === '"' || c === "'") parts.push(this.string());
      else {
        const m = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.i, this.i + 200));
        if (!m) throw new Error(`unexpected ${c ?? 'end'} at ${this.line}:${this.column}`);
        this.advance(m[0].length);
        parts.push(m[0]);
      }
      this.skipBlank(false);
      if (this.peek() !== '.') return { parts, starts };
      this.advance(1);
    }
  }

  private value(path: (string | number)[], keyStart: TomlPosition): void {
    this.skipBlank(false);
    const start = this.here();
    this.record(path, { key: keyStart, value: start });
    const c = this.peek();
    if (c === '"' || c === "'") {
      this.string();
    } else if (c === '[') {
      this.advance(1);
      for (let n = 0; ; n++) {
        this.skipBlank(true);
        if (this.peek() === ']' || this.i >= this.text.length) break;
        this.value([...path, n], this.here());
        this.skipBlank(true);
        if (this.peek() === ',') this.advance(1);
      }
      this.advance(1);
    } else if (c === '{') {
      this.advance(1);
      for (;;) {
        this.skipBlank(false);
        if (this.peek() === '}' || this.i >= this.text.length) break;
        const at = this.here();
        const { parts, starts } = this.key();
        this.skipBlank(false);
        this.expect('=');
        this.recordParents(path, parts, starts);
        this.value([...path, ...parts], at);
        this.skipBlank(false);
        if (this.peek() === ',') this.advance(1);
      }
      this.advance(1);
    } else {
      // Numbers, booleans, dates (which may hold a space): up to the next delimiter.
      const m = /^[^,\]}\n#]*/.exec(this.text.slice(this.i));
      this.advance(m?.[0].trimEnd().length || 1);
    }
  }

  private string(): string {
    const quote = this.peek() as string;
    const triple = this.text.startsWith(quote.repeat(3), this.i);
    this.advance(triple ? 3 : 1);
    let out = '';
    while (this.i < this.text.length) {
      if (triple ? this.text.startsWith(quote.repeat(3), this.i) && this.text[this.i + 3] !== quote : this.peek() === quote) {
        this.advance(triple ? 3 : 1);
        return out;
      }
      if (quote === '"' && this.peek() === '\\') {
        out += this.text.slice(this.i, this.i + 2);
        this.advance(2);
        continue;
      }
      out += this.peek();
      this.advance(1);
    }
    return out;
  }

  /** Spaces, tabs, comments and (when `newlines`) line ends. */
  private skipBlank(newlines: boolean): void {
    while (this.i < this.text.length) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || (newlines && c === '\n')) this.advance(1);
      else if (c === '#') while (this.i < this.text.length && this.peek() !== '\n') this.advance(1);
      else return;
    }
  }

  private expect(c: string): void {
    if (this.peek() !== c) throw new Error(`expected ${c} at ${this.line}:${this.column}`);
    this.advance(1);
  }

  private record(path: (string | number)[], entry: TomlEntry): void {
    const k = keyOf(path);
    if (!this.entries.has(k)) this.entries.set(k, entry);
  }

  /** Tables a header or dotted key defines on the way (`[a.b]` defines `a`), each at its key part. */
  private recordParents(prefix: (string | number)[], path: (string | number)[], starts: TomlPosition[]): void {
    let part = 0;
    for (let n = 0; n < path.length - 1; n++) {
      if (typeof path[n] !== 'string') continue;
      const pos = starts[part++];
      if (pos) this.record([...prefix, ...path.slice(0, n + 1)], { key: pos });
    }
  }

  private peek(): string | undefined {
    return this.text[this.i];
  }

  private here(): TomlPosition {
    return { line: this.line, column: this.column };
  }

  private advance(n: number): void {
    for (let k = 0; k < n && this.i < this.text.length; k++) {
      if (this.text[this.i] === '\n') {
        this.line++;
        this.column = 1;
      } else {
        this.column++;
      }
      this.i++;
    }
  }
}
