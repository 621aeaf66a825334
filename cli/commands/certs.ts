// `pier certs`: TLS certificates of an app, served by the edge on its tls = "terminate" endpoints
// (docs/guide-https.md). add (checked whole by the server: key, chain, names, expiry), list,
// describe (never the key), remove. An ACME certificate whose names the app dropped shows as
// unused, with when it will be removed (api/certificates/certificate-keeper.ts).
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable } from '../output.js';

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError('E_USAGE', `cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: `pass a readable PEM file with --${what}`,
      exitCode: EXIT.usage,
    });
  }
}

/** For an ACME certificate no endpoint lists any more: unused, and when it goes; otherwise "-". */
function state(c: { unusedSince?: string | null; removeAfter?: string | null }): string {
  if (!c.unusedSince) return '-';
  return `unused since ${c.unusedSince} (not served), removed after ${c.removeAfter ?? '?'} unless a name comes back`;
}

const add = defineCommand({
  meta: { name: 'add', description: 'Add a certificate (PEM chain, leaf first) and its private key to an app; its tls = "terminate" endpoints serve it on new handshakes' },
  args: {
    app: { type: 'string', description: 'The app', required: true, valueHint: 'APP' },
    cert: { type: 'string', description: 'PEM certificate chain file, leaf first (a "fullchain" file)', required: true, valueHint: 'FILE' },
    key: { type: 'string', description: 'PEM private key file (unencrypted); stored encrypted', required: true, valueHint: 'FILE' },
    json: { type: 'boolean', description: 'Print JSON on stdout ({ certificate: { id, names, … } })', default: false },
  },
  async run({ args }) {
    const cert = await readPem(String(args.cert), 'cert');
    const key = await readPem(String(args.key), 'key');
    const { certificate } = await new ApiClient(loadClientConfig(process.env)).addCertificate(String(args.app), cert, key);
    if (args.json) return printJson({ certificate });
    printLine(`added ${certificate.id} for ${certificate.names.join(', ')} to ${certificate.app} (expires ${certificate.notAfter}, ${certificate.daysLeft} days)`);
  },
});

const list = defineCommand({
  meta: { name: 'list', description: "List an app's certificates, newest first" },
  args: {
    app: { type: 'string', description: 'The app', required: true, valueHint: 'APP' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { certificates } = await new ApiClient(loadClientConfig(process.env)).listCertificates(String(args.app));
    if (args.json) return printJson({ certificates });
    printTable(['ID', 'NAMES', 'EXPIRES', 'DAYS LEFT', 'SOURCE', 'STATE'], certificates.map((c) => [c.id, c.names.join(','), c.notAfter, String(c.daysLeft), c.source, state(c)]));
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'Show one certificate: names, issuer, validity, fingerprint and its PEM chain (never the key)' },
  args: {
    id: { type: 'positional', description: 'The certificate id (cert_…)', required: true, valueHint: 'ID' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { certificate: c } = await new ApiClient(loadClientConfig(process.env)).describeCertificate(String(args.id));
    if (args.json) return printJson({ certificate: c });
    const lines: [string, string][] = [
      ['Id', c.id],
      ['App', c.app],
      ['Names', c.names.join(', ')],
      ['Issuer', c.issuer],
      ['Valid', `${c.notBefore} to ${c.notAfter} (${c.daysLeft} days left)`],
      ['SHA-256', c.fingerprint],
      ['Source', c.source],
      ['Added', c.createdAt],
      ...(c.unusedSince ? [['State', state(c)] as [string, string]] : []),
    ];
    for (const [k, v] of lines) printLine(`${`${k}:`.padEnd(9)}${v}`);
    printLine();
    printLine(c.chain.trimEnd());
  },
});

const remove = defineCommand({
  meta: { name: 'remove', description: 'Remove a certificate (refused when it is the last one served to an endpoint that terminates TLS); established connections carry on' },
  args: {
    id: { type: 'positional', description: 'The certificate id (cert_…)', required: true, valueHint: 'ID' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const id = String(args.id);
    if (!args.yes) await confirm(`remove certificate ${id}? new handshakes stop getting it`);
    const { certificate } = await new ApiClient(loadClientConfig(process.env)).removeCertificate(id);
    if (args.json) return printJson({ certificate });
    printLine(`removed ${certificate.id} (${certificate.names.join(', ')}) from ${certificate.app}`);
  },
});

export default defineCommand({
  meta: { name: 'certs', description: 'Add, list, describe and remove the TLS certificates the edge serves for an app (tls = "terminate")' },
  subCommands: { add, list, describe, remove },
});
