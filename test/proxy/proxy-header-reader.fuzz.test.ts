// Bounded, seeded fuzzing of the PROXY reader: random bytes and mutations of valid headers must always
// give one of the three states, consistently as more bytes arrive. FUZZ_SEED=<n> replays a run.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { formatIPv6, readProxyHeader, type ReadResult } from '../../proxy/proxy-header-reader.js';
import { tlv, v2Header, withCrc32c, withTlvs } from './proxy-header-fixtures.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const RANDOM_INPUTS = 20_000;
const MUTATIONS = 20_000;
const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = prng(SEED);
const int = (below: number): number => Math.floor(random() * below);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));

/** Bytes the input says a header needs, computed independently of the reader. */
function declaredLength(input: Buffer, cap: number): number {
  if (input[0] === 0x0d) return input.length < 16 ? 16 : Math.min(16 + input.readUInt16BE(14), cap);
  if (input[0] === 0x50) return Math.min(107, cap);
  return 1;
}

function checkOne(input: Buffer, cap: number, label: string): ReadResult {
  const options = { maxBytes: cap };
  const result = readProxyHeader(input, options);
  const where = `${label} seed=${SEED} input=${input.toString('hex')}`;
  const tail = bytes(1 + int(8));
  const extended = Buffer.concat([input, tail]);
  switch (result.state) {
    case 'done': {
      assert.ok(result.consumed > 0 && result.consumed <= input.length, where);
      assert.ok(result.consumed <= cap && result.consumed <= 16 + 0xffff, where);
      // The decision depends on the header bytes only: not on what follows them.
      assert.deepEqual(readProxyHeader(input.subarray(0, result.consumed), options), result, where);
      assert.deepEqual(readProxyHeader(extended, options), result, where);
      const { header } = result;
      for (const end of [header.source, header.destination]) {
        if (end && (header.family === 'tcp4' || header.family === 'tcp6')) {
          assert.ok(net.isIP(end.address) !== 0 && end.port >= 0 && end.port <= 0xffff, where);
        }
      }
      break;
    }
    case 'incomplete':
      assert.ok(input.length < declaredLength(input, cap), where);
      break;
    case 'invalid':
      assert.equal(typeof result.reason, 'string', where);
      // Once invalid, no further byte can make it valid.
      assert.deepEqual(readProxyHeader(extended, options), result, where);
      break;
    default:
      assert.fail(`unknown state ${JSON.stringify(result)} ${where}`);
  }
  return result;
}

function randomInput(): Buffer {
  const kind = int(4);
  if (kind === 0) return bytes(int(64));
  if (kind === 1) {
    // Plausible v2 fixed part, then anything.
    const fixed = Buffer.concat([
      SIGNATURE.subarray(0, random() < 0.9 ? 12 : int(13)),
      Buffer.from([pick([0x20, 0x21, 0x21, int(256)]), pick([0x00, 0x11, 0x21, 0x31, 0x12, int(256)])]),
    ]);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(random() < 0.8 ? int(120) : int(0x10000));
    return Buffer.concat([fixed, len, bytes(int(140))]).subarray(0, 12 + int(160));
  }
  // Plausible v1 line: tokens the grammar knows, random separators and junk.
  const tokens = ['TCP4', 'TCP6', 'UNKNOWN', '127.0.0.1', '::1', '::ffff:1.2.3.4', '0', '65535', '65536', '080', '+1', '', 'x'];
  let line = 'PROXY ';
  const count = int(8);
  for (let i = 0; i < count; i++) line += pick(tokens) + pick([' ', ' ', ' ', '  ', '\t', '']);
  line += pick(['\r\n', '\n', '\r', '', '\r\nGET /']);
  if (random() < 0.1) line += 'z'.repeat(int(120));
  return Buffer.from(line, 'latin1').subarray(0, kind === 2 ? undefined : int(line.length + 1));
}

const VALID: Buffer[] = [
  v2Header('192.0.2.1', 54321, '10.0.0.1', 443),
  v2Header('2001:db8::1', 1, '::1', 65535),
  v2Header('::ffff:127.0.0.1', 80, '::ffff:127.0.0.2', 8080),
  withTlvs(v2Header('192.0.2.1', 1, '192.0.2.2', 2), [tlv(0x04, Buffer.alloc(3)), tlv(0x02, Buffer.from('a.example')), tlv(0x05, Buffer.alloc(16, 9))]),
  withCrc32c(withTlvs(v2Header('2001:db8::5', 5, '2001:db8::6', 6), [tlv(0x02, Buffer.from('b.example')), tlv(0xe0, Buffer.from([1]))])),
  withCrc32c(v2Header('127.0.0.1', 3, '127.0.0.1', 4)),
  Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]),
  Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x11, 0x00, 0x04, 1, 2, 3, 4])]),
  Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 41766 7302\r\n'),
  Buffer.from('PROXY TCP6 2001:db8::1 ::1 5 443\r\n'),
  Buffer.from('PROXY UNKNOWN\r\n'),
];

function mutate(source: Buffer): Buffer {
  let out = Buffer.concat([source, random() < 0.5 ? Buffer.from('payload') : Buffer.alloc(0)]);
  const steps = 1 + int(4);
  for (let s = 0; s < steps; s++) {
    const at = int(out.length + 1);
    switch (int(7)) {
      case 0:
        if (at < out.length) out[at] = int(256);
        break;
      case 1:
        if (at < out.length) out[at] = out[at]! ^ (1 << int(8));
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), bytes(1 + int(3)), out.subarray(at)]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(3))]);
        break;
      case 4:
        out = out.subarray(0, at);
        break;
      case 5:
        if (out.length >= 16 && out[0] === 0x0d) out.writeUInt16BE(random() < 0.7 ? int(200) : int(0x10000), 14);
        break;
      default:
        out = Buffer.concat([out, bytes(int(20))]);
    }
  }
  return out;
}

test('random inputs never throw and always give a consistent state', (t) => {
  const counts = { done: 0, incomplete: 0, invalid: 0 };
  for (let i = 0; i < RANDOM_INPUTS; i++) {
    const cap = random() < 0.9 ? 4096 : 16 + int(0xffff);
    counts[checkOne(randomInput(), cap, `random #${i}`).state]++;
  }
  t.diagnostic(`seed ${SEED}: ${JSON.stringify(counts)}`);
  assert.equal(counts.done + counts.incomplete + counts.invalid, RANDOM_INPUTS);
  assert.ok(counts.invalid > 0 && counts.incomplete > 0, JSON.stringify(counts));
});

test('mutations of valid headers never throw and always give a consistent state', (t) => {
  const counts = { done: 0, incomplete: 0, invalid: 0 };
  for (let i = 0; i < MUTATIONS; i++) {
    const cap = random() < 0.9 ? 4096 : 28 + int(300);
    counts[checkOne(mutate(pick(VALID)), cap, `mutation #${i}`).state]++;
  }
  t.diagnostic(`seed ${SEED}: ${JSON.stringify(counts)}`);
  assert.equal(counts.done + counts.incomplete + counts.invalid, MUTATIONS);
  assert.ok(counts.done > 0 && counts.invalid > 0 && counts.incomplete > 0, JSON.stringify(counts));
});

test('a header of the largest size the format allows is read in one bounded pass', () => {
  // 64 KiB of random bytes behind a fixed part that declares the maximum len.
  for (let i = 0; i < 20; i++) {
    const input = Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff]), bytes(0xffff)]);
    checkOne(input, 16 + 0xffff, `max #${i}`);
  }
});

test('IPv6 addresses are printed exactly as Node prints them, mapped ones as IPv4', () => {
  for (let i = 0; i < 20_000; i++) {
    const words = Array.from({ length: 8 }, () => (random() < 0.5 ? 0 : random() < 0.5 ? int(16) : int(0x10000)));
    if (random() < 0.1) [words[0], words[1], words[2], words[3], words[4], words[5]] = [0, 0, 0, 0, 0, 0xffff];
    const raw = Buffer.alloc(16);
    words.forEach((w, k) => raw.writeUInt16BE(w, 2 * k));
    const full = words.map((w) => w.toString(16)).join(':');
    const node = new net.SocketAddress({ address: full, family: 'ipv6' }).address;
    const expected = node.startsWith('::ffff:') && net.isIPv4(node.slice(7)) ? node.slice(7) : node;
    assert.equal(formatIPv6(raw, 0), expected, `seed=${SEED} ${full}`);
  }
});
