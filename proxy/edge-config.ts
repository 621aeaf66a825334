// The edge's configuration: an immutable, versioned snapshot of what to listen on and where to
// send connections. The API builds it; the edge checks it whole with `edgeConfigSchema` (which
// also gives the types below) and swaps it in one step. Every endpoint field after `backends` is
// optional: absent means "off" (docs/edge.md). Messages are sentence tails; validate-edge-config.ts
// prefixes each with where it is.

import net from 'node:net';
import { z } from 'zod';
import { parseCidr } from './cidr-list.js';
import { checkSharedListeners } from './listener-sharing.js';
import { checkCertificates } from './tls/check-certificates.js';
import { listenerKey, normalizeIp } from './peer-address.js';

const quote = (value: unknown): string => JSON.stringify(value) ?? String(value);

const port = z.custom<number>((v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535, {
  error: (issue) => `has port ${quote(issue.input)}, which is not in 1-65535`,
});

/** An IPv4 or IPv6 literal, no brackets, not IPv4-mapped. */
const ipLiteral = z
  .custom<string>((v) => typeof v === 'string' && net.isIP(v) !== 0, {
    error: (issue) => `has address ${quote(issue.input)}, which is not an IPv4 or IPv6 literal`,
    abort: true,
  })
  .refine((a) => !a.includes(':') || normalizeIp(a) === a, {
    error: (issue) => `has IPv4-mapped address ${String(issue.input)}: write it as ${normalizeIp(String(issue.input))}`,
  });

const cidrList = (field: string, listError: string) =>
  z.array(z.string({ error: `${field}: every entry must be a string` }), { error: listError }).superRefine((list, ctx) => {
    for (const entry of list) {
      const range = parseCidr(entry);
      if (typeof range === 'string') return void ctx.addIssue({ code: 'custom', message: `${field}: ${range}` });
    }
  });

const positiveInteger = (field: string) =>
  z.custom<number>((v) => Number.isSafeInteger(v) && (v as number) >= 1, {
    error: (issue) => `${field} must be a positive integer, got ${quote(issue.input)}`,
  });

export const proxyProtocolModeSchema = z.enum(['none', 'v1', 'v2'], { error: 'proxyProtocol must be one of none, v1, v2' });
const tlvsError = 'proxyProtocolTlvs must be a list of authority, unique-id, crc32c';

export const bindAddressSchema = z.object(
  {
    /** An IPv4 or IPv6 literal (no brackets). */
    address: ipLiteral,
    port,
  },
  { error: 'must be an object with address and port' },
);

export const backendConfigSchema = z.object(
  {
    /** Stable id (the instance id); used to keep connection counts and drain across snapshots. */
    id: z.string().min(1),
    address: ipLiteral,
    port,
  },
  { error: 'needs a non-empty id' },
);

/** A certificate the edge may serve: PEM chain (leaf first) and PEM private key. */
export const certificateConfigSchema = z.object(
  {
    id: z.string().min(1),
    /** The names it covers (exact, or `*.example.com`), from the leaf's subjectAltName. */
    names: z.array(z.string()),
    cert: z.string().min(1),
    key: z.string().min(1),
  },
  { error: 'must be an object with id, names, cert and key' },
);

/** A tls-alpn-01 challenge certificate (RFC 8737) the app's terminate endpoints answer `acme-tls/1` hellos for `name` with. */
export const acmeChallengeConfigSchema = z.object(
  {
    app: z.string(),
    name: z.string().min(1),
    cert: z.string().min(1),
    key: z.string().min(1),
    /** The CA's challenge token: the edge reports the tokens it serves (edge-report.ts), so an order knows its own is up. */
    token: z.string().min(1).max(500).optional(),
  },
  { error: 'must be an object with app, name, cert and key' },
);

const terminateSchema = z.object(
  {
    /** Certificate ids (snapshot `certificates`); the first is the default for hellos no name matches. */
    // Empty while an ACME certificate is being obtained: the endpoint then answers tls-alpn-01 only.
    certificates: z.array(z.string()),
    /** ALPN protocols offered, in the server's order of preference; absent: no ALPN. */
    alpn: z.array(z.string().min(1).max(255)).optional(),
    /** PEM CA bundle: clients must present a certificate it signed (mTLS). */
    clientCa: z.string().min(1).optional(),
  },
  { error: 'terminate must be an object with certificates' },
);

export const endpointConfigSchema = z
  .object(
    {
      /** Stable id, unique in the snapshot: the API sends the endpoint row's id (`ep_...`). */
      id: z.string({ error: 'needs a non-empty id' }).min(1, { error: 'needs a non-empty id' }),
      /** A human label (`echo/9000`) for logs and metrics; the id stays the key. */
      name: z.string({ error: 'name must be a string' }).optional(),
      /** Opaque to the edge: bumped by the API when listener settings change; echoed in reports. */
      revision: z
        .custom<number>((v) => Number.isSafeInteger(v) && (v as number) >= 0, { error: (issue) => `revision must be a non-negative integer, got ${quote(issue.input)}` })
        .optional(),
      /** The app that owns the endpoint, for logs and metrics. */
      app: z.string({ error: 'app must be a string' }),
      /** PROXY protocol header sent to the backend before the client's bytes. */
      proxyProtocol: proxyProtocolModeSchema,
      bind: z.array(bindAddressSchema, { error: 'bind must be an array' }),
      backends: z.array(backendConfigSchema, { error: 'backends must be an array' }),
      /** TLVs added to a v2 header: AUTHORITY (the SNI name, when known), UNIQUE_ID, CRC32C. */
      proxyProtocolTlvs: z.array(z.enum(['authority', 'unique-id', 'crc32c'], { error: tlvsError }), { error: tlvsError }).optional(),
      /** The listeners of this endpoint require a PROXY v1/v2 header, and only from these sources. */
      acceptProxyProtocol: z
        .object(
          {
            /** CIDRs (or bare addresses) of the proxies allowed to connect; everyone else is refused. */
            trustedCidrs: cidrList('acceptProxyProtocol.trustedCidrs', 'acceptProxyProtocol needs a non-empty trustedCidrs list').refine((l) => l.length > 0, {
              error: 'acceptProxyProtocol needs a non-empty trustedCidrs list',
            }),
          },
          { error: 'acceptProxyProtocol needs a non-empty trustedCidrs list' },
        )
        .optional(),
      /** 'passthrough': route by the ClientHello's server name without terminating TLS. 'terminate': see `terminate`. */
      tls: z.enum(['none', 'passthrough', 'terminate'], { error: 'tls must be none, passthrough or terminate' }).optional(),
      /** The edge completes the TLS handshake and forwards plaintext (tls: terminate; proxy/tls/). */
      terminate: terminateSchema.optional(),
      /** Answer every HTTP request on this endpoint's listeners with a 308 to https (no backend needed). */
      httpRedirect: z.boolean({ error: 'httpRedirect must be true or false' }).optional(),
      /** Server names (exact, or `*.example.com` for one label) this passthrough endpoint serves. */
      sni: z.array(z.string({ error: 'sni must be a list of host names' }), { error: 'sni must be a list of host names' }).optional(),
      /** This passthrough endpoint takes hellos without a name or with a name nobody claims. */
      sniDefault: z.boolean({ error: 'sniDefault must be true or false' }).optional(),
      /** Client CIDRs served; empty or absent: everyone (minus `deny`). */
      allow: cidrList('allow', 'allow must be a list of CIDRs').optional(),
      /** Client CIDRs refused; wins over `allow`. */
      deny: cidrList('deny', 'deny must be a list of CIDRs').optional(),
      /** Concurrent client connections to this endpoint; more are closed at once. */
      maxConnections: positiveInteger('maxConnections').optional(),
      /** Concurrent connections from one client address to this endpoint. */
      maxConnectionsPerClient: positiveInteger('maxConnectionsPerClient').optional(),
      /** Close a connection when neither side sent a byte for this long. */
      idleTimeoutMs: positiveInteger('idleTimeoutMs').optional(),
    },
    { error: 'must be an object' },
  )
  .superRefine((e, ctx) => {
    const problem = (message: string): void => ctx.addIssue({ code: 'custom', message });
    if ((e.proxyProtocolTlvs ?? []).length > 0 && e.proxyProtocol !== 'v2') problem('proxyProtocolTlvs needs proxyProtocol v2');
    if (e.tls !== 'passthrough' && (e.sni !== undefined || e.sniDefault !== undefined)) problem('sni and sniDefault need tls: passthrough');
    if ((e.tls === 'terminate') !== (e.terminate !== undefined)) problem('tls: terminate and terminate go together');
    if (e.httpRedirect === true && e.tls !== undefined && e.tls !== 'none') problem('httpRedirect needs a plain (tls: none) endpoint');
    const keys = new Set<string>();
    for (const b of e.bind) {
      const key = listenerKey(b.address, b.port);
      if (keys.has(key)) problem(`binds ${key} twice`);
      keys.add(key);
    }
    const ids = new Set<string>();
    for (const b of e.backends) {
      if (ids.has(b.id)) problem(`backend id "${b.id}" appears twice`);
      ids.add(b.id);
    }
  });

export const edgeConfigSchema = z
  .object(
    {
      /** Increases with every change; the edge ignores a snapshot older than the one it serves. */
      version: z.custom<number>((v) => Number.isSafeInteger(v) && (v as number) >= 0, { error: 'version must be a non-negative integer' }),
      endpoints: z.array(endpointConfigSchema, { error: 'endpoints must be an array' }),
      /** Certificates that tls: terminate endpoints name (proxy/tls/). */
      certificates: z.array(certificateConfigSchema, { error: 'certificates must be an array' }).optional(),
      /** Pending tls-alpn-01 challenges (api/certificates/acme-challenges.ts). */
      acmeChallenges: z.array(acmeChallengeConfigSchema, { error: 'acmeChallenges must be an array' }).optional(),
    },
    { error: 'the snapshot must be an object' },
  )
  .superRefine((config, ctx) => {
    const ids = new Set<string>();
    for (const e of config.endpoints) {
      if (ids.has(e.id)) ctx.addIssue({ code: 'custom', message: `endpoint id "${e.id}" appears twice` });
      ids.add(e.id);
    }
    const problem0 = checkCertificates(config);
    if (problem0 !== undefined) ctx.addIssue({ code: 'custom', message: problem0 });
    // An address:port belongs to one endpoint, except TLS passthrough endpoints with distinct names.
    const problem = checkSharedListeners(config.endpoints);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

export type ProxyProtocolMode = z.infer<typeof proxyProtocolModeSchema>;
export type BindAddress = z.infer<typeof bindAddressSchema>;
export type BackendConfig = z.infer<typeof backendConfigSchema>;
export type EndpointConfig = z.infer<typeof endpointConfigSchema>;
/** Optional PROXY v2 TLVs sent to the backend (ignored by v1). */
export type ProxyProtocolTlv = NonNullable<EndpointConfig['proxyProtocolTlvs']>[number];
export type AcceptProxyProtocol = NonNullable<EndpointConfig['acceptProxyProtocol']>;
export type EdgeConfig = z.infer<typeof edgeConfigSchema>;
export type CertificateConfig = z.infer<typeof certificateConfigSchema>;
export type TerminateConfig = NonNullable<EndpointConfig['terminate']>;
export type AcmeChallengeConfig = z.infer<typeof acmeChallengeConfigSchema>;
