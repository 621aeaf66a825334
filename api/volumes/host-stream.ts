// Runs a host tool whose stdin or stdout is a stream (btrfs send/receive, tar) for a volume
// transfer: its failure becomes E_VOLUME_DRIVER with the tool's own words, like host-command.ts.
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { PierError } from '../pier-error.js';

export interface HostStream<S> {
  stream: S;
  /** Settles when the tool has exited: resolves on exit 0, else rejects with E_VOLUME_DRIVER. */
  done: Promise<void>;
  /**
   * Ends the transfer as failed: the tool is killed before its stream closes, so that a receiver
   * never takes a stream that was cut off (at a tar member's end, say) for a whole one. `done` rejects.
   */
  abort(): void;
}

function run(file: string, args: string[], direction: 'out' | 'in'): { child: ReturnType<typeof spawn>; done: Promise<void> } {
  const child = spawn(file, args, { stdio: direction === 'out' ? ['ignore', 'pipe', 'pipe'] : ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 4000) stderr += b.toString();
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(new PierError('E_VOLUME_DRIVER', `${file} could not run: ${err.message}`, { status: 500, hint: `install ${file} on the server`, cause: err })),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      reject(new PierError('E_VOLUME_DRIVER', `${file} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(0, 1000)}`, { status: 500, hint: 'see the server log; the source was left as it was' }));
    });
  });
  return { child, done };
}

/** Kills the tool, then closes its pipe: a `sh -c` wrapper dies before it could act on the EOF. */
function aborter(child: ReturnType<typeof spawn>, pipe: Readable | Writable): () => void {
  return () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    pipe.destroy();
  };
}

/** A tool that writes the stream (btrfs send, tar -c). */
export function hostSource(file: string, args: string[]): HostStream<Readable> {
  const { child, done } = run(file, args, 'out');
  return { stream: child.stdout as Readable, done, abort: aborter(child, child.stdout as Readable) };
}

/** A tool that reads the stream (btrfs receive, tar -x). A write error (the tool died) shows in `done`. */
export function hostSink(file: string, args: string[]): HostStream<Writable> {
  const { child, done } = run(file, args, 'in');
  (child.stdin as Writable).on('error', () => undefined);
  return { stream: child.stdin as Writable, done, abort: aborter(child, child.stdin as Writable) };
}
