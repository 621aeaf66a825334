// The in-memory runtime's networks and connections: networks hand out addresses from their
// subnet as Docker's IPAM does (gateway .1, containers from .2, freed at exit), and a connection
// to a container's address meets what its program listens with (memory-program.ts): an echo, an
// HTTP answer, or a sink; ECONNREFUSED when nothing listens on the port. No socket is opened.
import { randomBytes } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { PierError } from '../pier-error.js';
import type { ListenKind } from './memory-program.js';
import { LABELS, type NetworkInfo, type NetworkSpec } from './runtime.js';

interface Network {
  info: NetworkInfo;
  first: number;
  last: number;
  next: number;
  used: Set<number>;
  /** The IPv6 subnet's prefix text (`fd70:…:1::`) when the network is dual-stack. */
  v6: string | null;
  base: number;
}

export interface MemoryNetworks {
  ensure(spec: NetworkSpec): NetworkInfo;
  /** Makes a network as someone else would (no Pier label), for tests of the conflict. */
  addForeign(name: string, subnet: string): void;
  exists(name: string): boolean;
  /** A free address of the network (or `want`, when given and free); throws when the subnet is full. */
  assign(name: string, want?: string | null): string;
  /** The IPv6 address that goes with an IPv4 one on a dual-stack network (same host part), else null. */
  ipv6Of(name: string, ipv4: string): string | null;
  list(labels: Record<string, string>): NetworkInfo[];
  release(name: string, address: string): void;
  /** Forgets a network with no address in use: true when gone, false while one is used. */
  remove(name: string): boolean;
}

export function createMemoryNetworks(): MemoryNetworks {
  const networks = new Map<string, Network>();

  function make(spec: NetworkSpec): Network {
    const range = parseSubnet(spec.subnet);
    if (!range) throw new PierError('E_RUNTIME', `docker create network ${spec.name} failed: invalid subnet ${spec.subnet}`);
    const v6 = spec.ipv6Subnet ? /^([0-9a-f:]+::)\/\d+$/i.exec(spec.ipv6Subnet)?.[1] ?? null : null;
    if (spec.ipv6Subnet && !v6) throw new PierError('E_RUNTIME', `docker create network ${spec.name} failed: invalid subnet ${spec.ipv6Subnet}`);
    const info: NetworkInfo = { id: randomBytes(32).toString('hex'), name: spec.name, subnet: spec.subnet, ipv6Subnet: spec.ipv6Subnet ?? null, labels: { ...spec.labels }, created: true };
    const network = { info, first: range.base + 2, last: range.base + range.size - 2, next: range.base + 2, used: new Set<number>(), v6, base: range.base };
    networks.set(spec.name, network);
    return network;
  }

  return {
    ensure(spec) {
      const existing = networks.get(spec.name);
      if (!existing) return { ...make(spec).info };
      if (existing.info.labels[LABELS.managed] !== 'true') {
        throw new PierError('E_NETWORK_CONFLICT', `the Docker network "${spec.name}" exists and was not made by Pier`, {
          status: 409,
          hint: 'Pier only joins containers to a network it created (label dev.pier.managed=true): set PIER_NETWORK to another name',
        });
      }
      return { ...existing.info, created: false };
    },
    addForeign(name, subnet) {
      make({ name, subnet, labels: {} });
    },
    exists: (name) => networks.has(name),
    assign(name, want) {
      const n = networks.get(name);
      if (!n) throw new Error(`network ${name} missing`);
      const wanted = want ? parseIpv4(want) : null;
      if (wanted !== null) {
        if (n.used.has(wanted)) throw new PierError('E_RUNTIME', `docker connect failed: Address already in use (${want} on ${name})`);
        n.used.add(wanted);
        return formatIpv4(wanted);
      }
      for (let tries = 0; tries <= n.last - n.first; tries++) {
        const candidate = n.next;
        n.next = candidate >= n.last ? n.first : candidate + 1;
        if (!n.used.has(candidate)) {
          n.used.add(candidate);
          return formatIpv4(candidate);
        }
      }
      throw new PierError('E_RUNTIME', `docker start failed: no available IPv4 addresses on network ${name}`);
    },
    ipv6Of(name, ipv4) {
      const n = networks.get(name);
      const ip = parseIpv4(ipv4);
      return n?.v6 && ip !== null ? `${n.v6}${(ip - n.base).toString(16)}` : null;
    },
    list(labels) {
      return [...networks.values()].filter((n) => Object.entries(labels).every(([k, v]) => n.info.labels[k] === v)).map((n) => ({ ...n.info, created: false }));
    },
    release(name, address) {
      networks.get(name)?.used.delete(parseIpv4(address) ?? -1);
    },
    remove(name) {
      const n = networks.get(name);
      if (n && n.used.size > 0) return false;
      networks.delete(name);
      return true;
    },
  };
}

/** One connection to a program listening as `kind`; destroyed (ECONNRESET) when the container stops. */
export function virtualConnection(kind: ListenKind): Duplex {
  if (kind === 'echo') return new PassThrough();
  if (kind === 'sink') return new Duplex({ read() {}, write: (_chunk, _enc, done) => done() });
  let request = '';
  let answered = false;
  const conn: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      request += chunk.toString('latin1');
      if (!answered && request.includes('\r\n\r\n')) {
        answered = true;
        const body = '<h1>pier test</h1>\n';
        conn.push(`HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        conn.push(null);
      }
      done();
    },
  });
  return conn;
}

export function connectError(code: 'ECONNREFUSED' | 'EHOSTUNREACH', address: string, port: number): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`connect ${code} ${address}:${port}`);
  err.code = code;
  return err;
}

function parseSubnet(cidr: string): { base: number; size: number } | null {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  const ip = m ? parseIpv4(m[1] as string) : null;
  const bits = Number(m?.[2]);
  if (ip === null || !(bits >= 8 && bits <= 30)) return null;
  const size = 2 ** (32 - bits);
  return { base: ip - (ip % size), size };
}

function parseIpv4(text: string): number | null {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}
