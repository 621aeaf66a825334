// Another program holding a port, as in the issue that found the edge freezing: a separate Node
// process listening on HOST:PORT that answers "squatter" to whoever connects. Released (killed)
// on demand or when the test ends. (It was socat with SYSTEM:echo, which now and then answered
// nothing: when the echo had exited before the client's bytes came, socat's write to it failed
// and socat closed the connection without passing on what the echo had written.)

import { spawn } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

export interface Squatter {
  port: number;
  /** Stops the program and resolves once the port is free again (bindable; bounded to 5 s). */
  release(): Promise<void>;
}

// Half-open allowed: it answers and ends its side at once, then reads (and drops) whatever the
// client still sends, so a client that writes before reading never meets a reset.
const PROGRAM = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {});
  socket.on('end', () => socket.destroy());
  socket.end('squatter\\n');
  socket.resume();
});
server.on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});
server.listen({ host, port: Number(port), exclusive: true });
`;

export async function squatPort(t: TestContext, port: number, host = '127.0.0.1'): Promise<Squatter> {
  const child = spawn(process.execPath, ['-e', PROGRAM, host, String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const release = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    // Released means another program can listen there now.
    for (let i = 0; i < 100 && !(await canListen(host, port)); i++) await delay(50);
  };
  t.after(release);
  // Bounded: it listens within a few hundred milliseconds.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`the squatter exited: ${stderr}`);
    if (await answers(host, port)) return { port, release };
    await delay(50);
  }
  throw new Error(`the squatter did not listen on ${host}:${port}: ${stderr}`);
}

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
