// Another program holding a port, as in the issue that found the edge freezing: socat listening on
// 127.0.0.1:PORT and answering "squatter" to whoever connects. Released (killed) on demand or when
// the test ends.

import { spawn } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

export interface Squatter {
  port: number;
  /** Stops socat and resolves once the port is free again (bindable; bounded to 5 s). */
  release(): Promise<void>;
}

export async function squatPort(t: TestContext, port: number, host = '127.0.0.1'): Promise<Squatter> {
  // reuseaddr: the connections socat closed first linger in TIME_WAIT for a minute after it
  // exits, and without SO_REUSEADDR on its socket they keep anyone from binding the port
  // meanwhile (Linux asks both sides for it), which would make "released" a minute-long wait.
  // -t 30: a client that writes and ends first (as `exchange` does) puts socat at EOF on that
  // side, and socat then waits only -t (0.5 s by default) for the answer before it closes; under
  // load the shell that echoes took longer than that, and the client read nothing but a FIN.
  const child = spawn('socat', ['-t', '30', `TCP-LISTEN:${port},bind=${host},reuseaddr,fork`, 'SYSTEM:echo squatter'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const release = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    // socat's forked children (one per connection it took) may hold the listening socket a
    // moment longer: released means another program can listen there now.
    for (let i = 0; i < 100 && !(await canListen(host, port)); i++) await delay(50);
  };
  t.after(release);
  // Bounded: socat listens within a few hundred milliseconds.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`socat exited: ${stderr}`);
    if (await answers(host, port)) return { port, release };
    await delay(50);
  }
  throw new Error(`socat did not listen on ${host}:${port}: ${stderr}`);
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
