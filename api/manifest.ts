// pier.toml: its schema, and parsing + validation of a whole manifest at once. The CLI sends
// the TOML text; the server validates it here, so both report the same problems.
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { PierError } from './pier-error.js';

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must start with a letter and hold only a-z, 0-9 and "-" (at most 40 characters)');

const env = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), z.string());

const processSchema = z
  .object({
    cmd: z.array(z.string()).min(1, 'must hold at least the program to run').optional(),
    count: z.number().int().min(0).max(100).default(1),
    env: env.default({}),
  })
  .strict();

const port = z.number().int().min(1).max(65535);

const endpointSchema = z
  .object({
    process: name,
    port,
    target: port,
    proxy_protocol: z.enum(['none', 'v1', 'v2']).default('none'),
  })
  .strict();

export const manifestSchema = z
  .object({
    app: name,
    image: z.string().min(1, 'must name an image, e.g. "local/echo:1"'),
    env: env.default({}),
    processes: z.record(name, processSchema).refine((p) => Object.keys(p).length > 0, 'must define at least one process'),
    endpoints: z.array(endpointSchema).default([]),
  })
  .strict()
  .superRefine((m, ctx) => {
    const ports = new Set<number>();
    m.endpoints.forEach((e, i) => {
      if (!(e.process in m.processes)) {
        ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'process'], message: `names no process; define [processes.${e.process}] or use one of: ${Object.keys(m.processes).join(', ')}` });
      }
      if (ports.has(e.port)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'port'], message: `port ${e.port} is used by another endpoint of this app` });
      ports.add(e.port);
    });
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type ProcessSpec = Manifest['processes'][string];
export type EndpointSpec = Manifest['endpoints'][number];

export interface ManifestProblem {
  /** Dotted path of the field, e.g. `endpoints[0].port`; empty for the document itself. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Parses and validates TOML text; throws E_MANIFEST_INVALID listing every problem. */
export function parseManifest(text: string, file = 'pier.toml'): Manifest {
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'invalid TOML';
      throw invalid(file, [{ path: '', message: `not valid TOML: ${reason}`, line: err.line, column: err.column }]);
    }
    throw err;
  }
  return validateManifest(doc, file);
}

/** Validates an already-parsed manifest object. */
export function validateManifest(doc: unknown, file = 'pier.toml'): Manifest {
  const result = manifestSchema.safeParse(doc);
  if (result.success) return result.data;
  throw invalid(file, result.error.issues.map(toProblem));
}

function toProblem(issue: z.core.$ZodIssue): ManifestProblem {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return { path, message: `unknown key ${keys}` };
  }
  return { path, message: issue.message };
}

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function invalid(file: string, problems: ManifestProblem[]): PierError {
  const lines = problems.map((p) => {
    const where = p.line ? `${file}:${p.line}:${p.column ?? 1}` : file;
    return `${where}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
  });
  return new PierError('E_MANIFEST_INVALID', `the manifest is not valid:\n  ${lines.join('\n  ')}`, {
    status: 422,
    hint: 'fix the fields listed above; docs/manifest.md describes every key',
    details: problems,
  });
}
