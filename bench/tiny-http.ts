// A tiny HTTP responder for the PROXY header cost: it answers every request alike whether or not a
// PROXY header (v1 or v2) comes first, so the same backend serves the "without" and "with" runs
// and the difference between them is the proxy's own work (nginx needs two different listeners).

import net from 'node:net';

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const END_OF_HEADERS = Buffer.from('\r\n\r\n');

/** Where the request starts: after a PROXY header if there is one; -1 while the header is incomplete. */
function requestStart(buf: Buffer): number {
  if (buf.length >= 12 && buf.subarray(0, 12).equals(V2_SIGNATURE)) {
    if (buf.length < 16) return -1;
    const end = 16 + buf.readUInt16BE(14);
    return buf.length >= end ? end : -1;
  }
  if (buf.length >= 6 && buf.toString('latin1', 0, 6) === 'PROXY ') {
    const nl = buf.indexOf('\r\n');
    return nl < 0 ? -1 : nl + 2;
  }
  return 0;
}

export function startTinyHttp(): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    let buf: Buffer | null = null;
    const onData = (chunk: Buffer): void => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      const start = requestStart(buf);
      if (start < 0 || buf.indexOf(END_OF_HEADERS, start) < 0) return;
      socket.off('data', onData);
      socket.end(RESPONSE);
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => resolve(server)));
}
