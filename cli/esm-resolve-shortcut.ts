// A resolve hook that spares Node 22/24 re-reading a dependency's package.json on every import.
// Node's ESM resolver asks for the package scope of every `.js` file it resolves (to learn
// "type"), and packageResolve reads the package.json of every bare import; since the reader moved
// to C++ (Node 21.5+, still in 24) each ask copies the file's raw "exports" text into JS and
// JSON.parses it again (nodejs/node#58126, #60397). drizzle-orm's "exports" is ~130 KB: its files
// import each other ~500 times and Pier's files import it ~90 times when the API loads, 3.5 ms
// each, ~1.5 s of CPU per process. Node 20 keeps the parsed file.
//
// Two answers, both Node's own result, for ESM imports from files only (require() and the entry
// point go to Node's resolver untouched):
// - a result already given for the same specifier from the same folder (resolution depends on
//   the parent's folder, not its name) is given again;
// - a relative `.js` import inside node_modules resolving to an existing file whose nearest
//   package.json says "type": "module" is that file's real path, format "module". Anything else
//   (other extensions, missing files, folders, query strings, encoded separators,
//   --preserve-symlinks, packages without "type": "module") goes to Node's resolver.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import module from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type ResolveResult = { url: string; format?: string | null | undefined; shortCircuit?: boolean };
type ResolveContext = { parentURL?: string | undefined; conditions?: readonly string[] };
type RegisterHooks = (hooks: { resolve: (specifier: string, context: ResolveContext, next: (s: string, c?: ResolveContext) => ResolveResult) => ResolveResult }) => unknown;

const NODE_MODULES = `${sep}node_modules${sep}`;

/** Installs the hook (once per process); a no-op where Node lacks module.registerHooks (before 22.15 / 23.5). */
export function installEsmResolveShortcut(): boolean {
  const registerHooks = (module as unknown as { registerHooks?: RegisterHooks }).registerHooks;
  if (typeof registerHooks !== 'function' || preservesSymlinks()) return false;
  const typeOfDir = new Map<string, string | null>();
  const resolved = new Map<string, ResolveResult>();
  registerHooks({
    resolve(specifier, context, next) {
      const parent = context.parentURL;
      if (parent === undefined || !parent.startsWith('file:') || !context.conditions?.includes('import')) return next(specifier, context);
      const url = shortcut(specifier, parent, typeOfDir);
      if (url !== null) return { url, format: 'module', shortCircuit: true };
      const key = `${specifier}\0${parent.slice(0, parent.lastIndexOf('/'))}\0${context.conditions.join(',')}`;
      const known = resolved.get(key);
      if (known !== undefined) return known;
      const result = next(specifier, context);
      if (result.url.startsWith('file:') || result.url.startsWith('node:')) resolved.set(key, { url: result.url, format: result.format, shortCircuit: true });
      return result;
    },
  });
  return true;
}

function shortcut(specifier: string, parent: string, typeOfDir: Map<string, string | null>): string | null {
  if (!(specifier.startsWith('./') || specifier.startsWith('../')) || !specifier.endsWith('.js')) return null;
  if (/%2f|%5c/i.test(specifier)) return null;
  const target = new URL(specifier, parent);
  if (target.search !== '' || target.hash !== '') return null;
  const file = fileURLToPath(target);
  if (!file.includes(NODE_MODULES)) return null;
  const stat = statSync(file, { throwIfNoEntry: false });
  if (stat === undefined || !stat.isFile()) return null;
  const real = realpathSync.native(file);
  if (packageType(dirname(real), typeOfDir) !== 'module') return null;
  return pathToFileURL(real).href;
}

/** "type" of the nearest package.json, as Node looks it up (not past a node_modules folder). */
function packageType(dir: string, typeOfDir: Map<string, string | null>): string | null {
  const known = typeOfDir.get(dir);
  if (known !== undefined) return known;
  let type: string | null = null;
  const base = dir.slice(dir.lastIndexOf(sep) + 1);
  if (base !== 'node_modules') {
    const text = readOrNull(join(dir, 'package.json'));
    if (text !== null) type = typeField(text);
    else if (dirname(dir) !== dir) type = packageType(dirname(dir), typeOfDir);
  }
  typeOfDir.set(dir, type);
  return type;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The "type" string, or null when absent or the file is not valid JSON (Node then decides). */
function typeField(text: string): string | null {
  try {
    const type = (JSON.parse(text) as { type?: unknown }).type;
    return typeof type === 'string' ? type : null;
  } catch {
    return null;
  }
}

function preservesSymlinks(): boolean {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return flags.some((f) => f.startsWith('--preserve-symlinks')) || process.env.NODE_PRESERVE_SYMLINKS === '1';
}
