// One TCP connection carried over one WebSocket, both ends of `pier port-forward` / `pier connect`
// (the CLI's local socket, the API's connection to the instance). Binary frames are the bytes;
// text frames are control: `{"type":"end"}` is a half-close (FIN) from the sender, and
// `{"type":"error","error":{code,message,hint}}` ends the tunnel with a reason. Buffers are bounded
// both ways: a WebSocket whose unsent bytes pass HIGH_WATER pauses the socket, and a socket that
// will not take more pauses the WebSocket (TCP's window then pushes back on the sender). A tunnel
// that fails resets its socket (RST): a FIN would tell the peer the stream ended, and a cut upload
// or answer would pass for a complete one.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';

/** Unsent bytes on the WebSocket above which the socket is no longer read. */
export const HIGH_WATER = 1024 * 1024;
const LOW_WATER = HIGH_WATER / 4;

export interface TunnelError {
  code: string;
  message: string;
  hint?: string | undefined;
}

export interface TunnelResult {
  /** Bytes read from the socket and sent over the WebSocket. */
  bytesToPeer: number;
  /** Bytes received over the WebSocket and written to the socket. */
  bytesFromPeer: number;
  /** Why it ended, when it was not both sides closing: an error of either side, or idleness. */
  error: TunnelError | null;
  /** Set when the error came from the other end (its `error` frame). */
  remote: boolean;
}

export interface TunnelOptions {
  /** Close both after this long without a byte either way (0: never). */
  idleTimeoutMs?: number;
  /** How a failure of the socket is told to the other end (e.g. "the instance went away"). */
  socketError?: (err: Error | null) => TunnelError;
}

/** Pipes `socket` and `ws` until both sides have closed or one fails; never rejects. */
export function joinTunnel(socket: Duplex, ws: WebSocket, options: TunnelOptions = {}): Promise<TunnelResult> {
  const result: TunnelResult = { bytesToPeer: 0, bytesFromPeer: 0, error: null, remote: false };
  let unsent = 0;
  let socketEnded = false; // the socket sent its FIN (we told the peer)
  let peerEnded = false; // the peer sent its FIN (we ended the socket)
  let done = false;
  let idle: NodeJS.Timeout | undefined;
  let active = true;
  ws.binaryType = 'nodebuffer';

  return new Promise<TunnelResult>((resolve) => {
    const finish = (error: TunnelError | null, remote = false, closeCode = 1000): void => {
      if (done) return;
      done = true;
      if (idle) clearInterval(idle);
      result.error = error;
      result.remote = remote;
      if (error && !remote && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', error }));
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(error ? closeCode === 1000 ? 1011 : closeCode : 1000);
      if (error) reset(socket);
      else socket.end();
      resolve(result);
    };
    const bothEnded = (): void => {
      if (socketEnded && peerEnded && unsent === 0) finish(null);
    };

    socket.on('data', (chunk: Buffer) => {
      active = true;
      result.bytesToPeer += chunk.length;
      unsent += chunk.length;
      ws.send(chunk, { binary: true }, () => {
        unsent -= chunk.length;
        if (unsent <= LOW_WATER && socket.isPaused() && !done) socket.resume();
        if (unsent === 0) bothEnded();
      });
      if (unsent > HIGH_WATER) socket.pause();
    });
    socket.on('end', () => {
      socketEnded = true;
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'end' }));
      bothEnded();
    });
    socket.on('error', (err: Error) => finish(options.socketError?.(err) ?? { code: 'E_TUNNEL_SOCKET', message: err.message }));
    socket.on('close', () => {
      // Closed without its FIN having been read (reset, destroyed): a failure, not an end.
      if (!socketEnded && !done) finish(options.socketError?.(null) ?? { code: 'E_TUNNEL_SOCKET', message: 'the connection closed' });
      else if (!done && peerEnded) bothEnded();
    });

    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (done) return;
      active = true;
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (isBinary) {
        result.bytesFromPeer += bytes.length;
        socket.write(bytes);
        // The socket's own mark (16 KiB) would pause at nearly every frame: allow up to HIGH_WATER.
        if (socket.writableLength > HIGH_WATER && !ws.isPaused) {
          ws.pause();
          socket.once('drain', () => ws.resume());
        }
        return;
      }
      let message: { type?: unknown; error?: Partial<TunnelError> };
      try {
        message = JSON.parse(bytes.toString('utf8')) as typeof message;
      } catch {
        return;
      }
      if (message.type === 'end') {
        peerEnded = true;
        socket.end();
        bothEnded();
      } else if (message.type === 'error') {
        finish({ code: message.error?.code ?? 'E_TUNNEL_FAILED', message: message.error?.message ?? 'the other end of the tunnel failed', hint: message.error?.hint }, true);
      }
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (done) return;
      if (socketEnded && peerEnded) return finish(null);
      finish({ code: 'E_TUNNEL_CLOSED', message: `the tunnel closed before both sides had finished (WebSocket ${code}${reason.length ? `: ${reason.toString()}` : ''})` }, true);
    });
    ws.on('error', (err: Error) => finish({ code: 'E_TUNNEL_CLOSED', message: `the tunnel failed: ${err.message}` }, true));

    // Either side may have gone while the other was being opened: no event would tell us now.
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) finish({ code: 'E_TUNNEL_CLOSED', message: 'the tunnel closed before it was joined' }, true);
    else if (socket.destroyed) finish(options.socketError?.(null) ?? { code: 'E_TUNNEL_SOCKET', message: 'the connection closed before the tunnel was joined' });
    // A WebSocket handed over paused (cli/tunnel-socket.ts: nothing is read before these listeners) goes on now.
    else if (ws.isPaused) ws.resume();

    const idleMs = options.idleTimeoutMs ?? 0;
    if (idleMs > 0 && !done) {
      // Checked a few times per period: cheaper than re-arming a timer for every chunk.
      const step = Math.max(50, Math.floor(idleMs / 4));
      let quietSince = Date.now();
      idle = setInterval(() => {
        if (active) {
          active = false;
          quietSince = Date.now();
        } else if (Date.now() - quietSince >= idleMs) {
          finish({ code: 'E_TUNNEL_IDLE', message: `no byte went either way for ${Math.round(idleMs / 1000)} s: the tunnel was closed`, hint: 'open it again; --idle-timeout sets a longer limit' }, false, 1000);
        }
      }, step);
      idle.unref();
    }
  });
}

/**
 * Ends `socket` with a reset where it is a TCP socket, so its peer sees ECONNRESET and not an end
 * of stream; anything else (a TLS socket, stdio) is destroyed.
 */
export function reset(socket: Duplex): void {
  const tcp = socket as Partial<Socket>;
  if (typeof tcp.resetAndDestroy === 'function' && !socket.destroyed) {
    try {
      tcp.resetAndDestroy();
      return;
    } catch {
      // Not a TCP handle (ERR_INVALID_HANDLE_TYPE): destroyed below.
    }
  }
  socket.destroy();
}
