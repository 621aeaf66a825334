// An edge for tests (silent logger, closed when the test ends), a terse builder for endpoints
// whose backends are test servers, and the TCP I/O modes the edge suites run against: every edge
// test runs once per mode (forEachIo), so both implementations pass one contract.

import { describe, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { BindAddress, EndpointConfig, ProxyProtocolMode } from '../../proxy/edge-config.js';
import { createEdge, type Edge, type EdgeOptions } from '../../proxy/edge.js';
import { currentNodeFacts, handleUnusableBecause, selectTcpIo } from '../../proxy/tcp-io/select-tcp-io.js';
import type { TcpIo, TcpIoMode } from '../../proxy/tcp-io/tcp-io.js';

export interface IoUnderTest {
  mode: TcpIoMode;
  /** Null when this Node cannot run the mode (then its suite is skipped with `skip`). */
  io: TcpIo | null;
  skip: string | undefined;
}

/** Both modes, loaded once per test file; handle only where this Node lets it run. */
export const IO_MODES: IoUnderTest[] = await loadModes();

async function loadModes(): Promise<IoUnderTest[]> {
  const unusable = handleUnusableBecause(currentNodeFacts());
  const socket = await selectTcpIo('socket');
  const handle = unusable === null ? await selectTcpIo('handle') : null;
  return [
    { mode: 'handle', io: handle?.io ?? null, skip: unusable === null ? undefined : `handle i/o cannot run here: ${unusable}` },
    { mode: 'socket', io: socket.io, skip: undefined },
  ];
}

/**
 * Registers the tests `define` declares once per TCP I/O mode, each set under a describe named
 * after the mode; `define` gets the mode's TcpIo (for createTestEdge) and its name (for `--io`).
 */
export function forEachIo(define: (io: TcpIo, mode: TcpIoMode) => void): void {
  for (const { mode, io, skip } of IO_MODES) {
    describe(`on ${mode} i/o`, { skip }, () => {
      if (io !== null) define(io, mode);
    });
  }
}

export function createTestEdge(t: TestContext, io: TcpIo, options: Partial<EdgeOptions> = {}): Edge {
  const edge = createEdge({ log: pino({ level: 'silent' }), io, ...options });
  t.after(() => edge.close());
  return edge;
}

export interface TestEndpoint {
  id: string;
  bind: BindAddress[];
  /** Servers with an address and port; their index becomes the backend id (`b0`, `b1`...) unless named. */
  backends: { address: string; port: number; id?: string }[];
  proxyProtocol?: ProxyProtocolMode;
  /** Any optional endpoint fields (limits, lists, SNI, PROXY-in...). */
  options?: Partial<EndpointConfig>;
}

export function endpoint(spec: TestEndpoint): EndpointConfig {
  return {
    id: spec.id,
    app: 'test',
    bind: spec.bind,
    proxyProtocol: spec.proxyProtocol ?? 'none',
    backends: spec.backends.map((b, i) => ({ id: b.id ?? `b${i}`, address: b.address, port: b.port })),
    ...spec.options,
  };
}
