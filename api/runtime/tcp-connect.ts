// A TCP connection with a deadline, as a health check or a probe of a container's address makes
// it: resolves once connected, rejects with the socket's error code (ECONNREFUSED, EHOSTUNREACH)
// or ETIMEDOUT on `err.code`.
import net from 'node:net';

export function connectTcp(host: string, port: number, timeoutMs: number, allowHalfOpen = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen });
    const fail = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      const err: NodeJS.ErrnoException = new Error(`connect ETIMEDOUT ${host}:${port} (no answer within ${timeoutMs} ms)`);
      err.code = 'ETIMEDOUT';
      fail(err);
    }, timeoutMs);
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}
