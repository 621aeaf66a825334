// Another process holding ports on loopback, for tests of bind failures (EADDRINUSE) and of
// connects that hang: a child node process, killed when the test ends.

import { spawn } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';

const HOLD = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const server = net.createServer().listen({ host, port: Number(port), ipv6Only: host.includes(':') }, () => {
  process.stdout.write(String(server.address().port) + '\\n');
});`;

// Listens with a backlog of 1 and then blocks its event loop: the kernel queues two connections
// that are never accepted and drops every further SYN, so a connect to it hangs.
const BLACK_HOLE = `
const net = require('node:net');
const server = net.createServer().listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(String(server.address().port) + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;

/** Makes another process listen on host:port; resolves once it does. */
export function holdPort(t: TestContext, host: string, port: number): Promise<number> {
  return runChild(t, HOLD, [host, String(port)]);
}

/** A port on 127.0.0.1 where connects hang: its accept queue is already full and never drained. */
export async function startBlackHole(t: TestContext): Promise<number> {
  const port = await runChild(t, BLACK_HOLE, []);
  for (let i = 0; i < 2; i++) {
    const filler = net.connect({ host: '127.0.0.1', port });
    t.after(() => filler.destroy());
    await new Promise<void>((resolve, reject) => {
      filler.once('connect', resolve);
      filler.once('error', reject);
    });
  }
  return port;
}

function runChild(t: TestContext, script: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`helper process exited (${code}): ${err}`)));
    child.once('error', reject);
  });
}
