// The manifest's `[[private]]` tables: which ports a process group offers on its organisation's
// private network, TCP (the default) or UDP (`protocol = "udp"`; one entry per group and protocol). A group listed here gets the names PROCESS.APP.internal and APP.internal (its
// ready instances answer them); one not listed still joins the network as a client, nameless.
import { z } from 'zod';

export const privateSchema = z
  .object({
    /** The process group that offers the ports. */
    process: z.string(),
    /** Ports its instances listen on, reached at PROCESS.APP.internal:PORT. */
    ports: z.array(z.number().int().min(1).max(65535)).min(1, 'must list at least one port the process listens on, e.g. ports = [8080]').max(64),
    /** The protocol of those ports; a group offering both has one entry per protocol. */
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
  })
  .strict()
  .superRefine((p, ctx) => {
    const seen = new Set<number>();
    p.ports.forEach((port, i) => {
      if (seen.has(port)) ctx.addIssue({ code: 'custom', path: ['ports', i], message: `port ${port} is listed twice` });
      seen.add(port);
    });
  });

export type PrivateSpec = z.infer<typeof privateSchema>;

/** The suffix of every private name. */
export const PRIVATE_DOMAIN = 'internal';

/** The names a ready instance of `process` answers to: its group's, then its app's. */
export function privateNames(app: string, process: string): string[] {
  return [`${process}.${app}.${PRIVATE_DOMAIN}`, `${app}.${PRIVATE_DOMAIN}`];
}

/** Entries as stored: a manifest from before `protocol` has none (TCP). */
type StoredOffer = Omit<PrivateSpec, 'protocol'> & { protocol?: 'tcp' | 'udp' | undefined };

/** A `[[private]]` entry of a process (any protocol), from a manifest of any release (older ones have none). */
export function privateOffer(manifest: { private?: StoredOffer[] | undefined }, process: string): StoredOffer | undefined {
  return (manifest.private ?? []).find((p) => p.process === process);
}

/** The ports a process offers, by protocol (empty lists when it offers none). */
export function privatePorts(manifest: { private?: StoredOffer[] | undefined }, process: string): { tcp: number[]; udp: number[] } {
  const out = { tcp: [] as number[], udp: [] as number[] };
  for (const p of manifest.private ?? []) if (p.process === process) out[p.protocol ?? 'tcp'].push(...p.ports);
  return out;
}
