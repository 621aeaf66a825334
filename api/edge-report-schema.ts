// The body of `POST /v1/edge/report` (EDGE-REPORT.md), validated with zod. Objects are loose: a
// newer edge may add fields, and they are kept with the report. Bounds keep one report's work
// finite; the body limit (api/app.ts) bounds its size.
import { z } from 'zod';

const count = z.number().finite().nonnegative();
const text = (max: number) => z.string().max(max);

const listenerSchema = z.looseObject({
  address: text(100),
  port: z.number().int().min(0).max(65535),
  state: z.enum(['bound', 'failed']),
  error: z.looseObject({ code: text(100), message: text(2000) }).optional(),
  retryAt: text(100).optional(),
});

const endpointSchema = z.looseObject({
  id: text(200).min(1),
  name: text(400).optional(),
  revision: z.number().int().nonnegative().nullable(),
  state: z.enum(['serving', 'failed']),
  listeners: z.array(listenerSchema).max(256),
  active: count,
  total: count,
  bytesIn: count,
  bytesOut: count,
  connectErrors: count,
});

const backendSchema = z.looseObject({
  endpoint: text(200),
  id: text(200),
  active: count,
  ejected: z.boolean(),
  connectFailures: count,
  lastError: text(2000).optional(),
});

export const edgeReportSchema = z.looseObject({
  edge: z.looseObject({
    id: text(200).min(1),
    name: text(200).min(1),
    version: text(100),
    pid: z.number().int().nonnegative(),
    workers: z.number().int().nonnegative(),
    io: text(20).optional(),
  }),
  applied: z.number().int().nonnegative().nullable(),
  lastError: text(4000).nullable(),
  endpoints: z.array(endpointSchema).max(100_000),
  backends: z.array(backendSchema).max(1_000_000),
  // The tokens of the ACME challenges the edge serves; absent from edges older than it (orders
  // then go by the snapshot version: api/certificates/edges-applied.ts).
  acmeTokens: z.array(text(500)).max(100_000).optional(),
  at: text(100),
});

export type EdgeReportBody = z.infer<typeof edgeReportSchema>;
export type ReportedEndpointBody = EdgeReportBody['endpoints'][number];
export type ReportedBackendBody = EdgeReportBody['backends'][number];
