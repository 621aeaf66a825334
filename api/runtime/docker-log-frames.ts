// Decodes Docker's attach/logs stream format. Non-TTY containers multiplex stdout and stderr in
// frames: [stream, 0, 0, 0, size (u32 BE)] + payload; a TTY stream is raw bytes. Works on a whole
// body (parseLogFrames) or incrementally on a stream, chunk by chunk (FrameDecoder, LogLineDecoder).

import { StringDecoder } from 'node:string_decoder';
import type { LogLine } from './runtime.js';

type Stream = LogLine['stream'];

export interface Frame {
  stream: Stream;
  payload: Buffer;
}

const HEADER = 8;

/** Splits a complete logs body into lines, oldest first. A TTY body (no frames) is all stdout. */
export function parseLogFrames(body: Buffer): LogLine[] {
  const decoder = new LogLineDecoder();
  const lines = [...decoder.push(body), ...decoder.end()];
  // Docker copies stdout and stderr in separate goroutines, so the file order across streams can
  // disagree with the times the lines were received; the times are the better answer (stable sort).
  return lines.sort((a, b) => a.time.getTime() - b.time.getTime());
}

/**
 * Cuts a multiplexed stream into frames as chunks arrive; a frame split across chunks is held
 * until its last byte. Used as it is for exec output (no timestamps, no line splitting).
 */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (offset + HEADER <= this.buffered.length) {
      const size = this.buffered.readUInt32BE(offset + 4);
      const end = offset + HEADER + size;
      if (end > this.buffered.length) break;
      const stream: Stream = this.buffered[offset] === 2 ? 'stderr' : 'stdout';
      frames.push({ stream, payload: this.buffered.subarray(offset + HEADER, end) });
      offset = end;
    }
    this.buffered = this.buffered.subarray(offset);
    return frames;
  }

  /** A truncated last frame (the engine went away mid-frame) is returned with what arrived. */
  end(): Frame[] {
    if (this.buffered.length <= HEADER) return [];
    const frame: Frame = { stream: this.buffered[0] === 2 ? 'stderr' : 'stdout', payload: this.buffered.subarray(HEADER) };
    this.buffered = Buffer.alloc(0);
    return [frame];
  }
}

/**
 * Turns a logs stream (`timestamps=true`) into LogLines as chunks arrive, in arrival order.
 * Whether the stream is multiplexed is decided from its first 8 bytes.
 */
export class LogLineDecoder {
  private mode: 'unknown' | 'frames' | 'raw' = 'unknown';
  private head: Buffer = Buffer.alloc(0);
  private readonly frames = new FrameDecoder();
  private rawText = '';
  // A TTY stream can split a UTF-8 character across chunks.
  private readonly utf8 = new StringDecoder('utf8');
  // Each frame is one log message with its own timestamp; a message longer than Docker's 16 KiB
  // buffer comes as several frames without a newline until the last, so those are joined.
  private readonly pending: Record<Stream, { time: Date; text: string } | null> = { stdout: null, stderr: null };

  push(chunk: Buffer): LogLine[] {
    if (this.mode === 'unknown') {
      this.head = Buffer.concat([this.head, chunk]);
      if (this.head.length < HEADER) return [];
      this.mode = isMultiplexed(this.head) ? 'frames' : 'raw';
      chunk = this.head;
      this.head = Buffer.alloc(0);
    }
    if (this.mode === 'raw') return this.pushRaw(this.utf8.write(chunk));
    const lines: LogLine[] = [];
    for (const frame of this.frames.push(chunk)) this.pushFrame(frame, lines);
    return lines;
  }

  /** Flushes what is left: a last message without a newline is still a line. */
  end(): LogLine[] {
    const lines: LogLine[] = [];
    if (this.mode === 'unknown' && this.head.length > 0) {
      this.mode = 'raw';
      lines.push(...this.pushRaw(this.utf8.write(this.head)));
    }
    if (this.mode === 'raw') {
      this.rawText += this.utf8.end();
      if (this.rawText !== '') lines.push({ stream: 'stdout', ...splitTime(this.rawText) });
      this.rawText = '';
      return lines;
    }
    for (const frame of this.frames.end()) this.pushFrame(frame, lines);
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.pending[stream];
      if (rest !== null) lines.push({ stream, time: rest.time, line: trimCr(rest.text) });
      this.pending[stream] = null;
    }
    return lines;
  }

  private pushRaw(text: string): LogLine[] {
    const parts = (this.rawText + text).split('\n');
    this.rawText = parts.pop() ?? '';
    return parts.filter((l) => l !== '').map((l) => ({ stream: 'stdout' as const, ...splitTime(l) }));
  }

  private pushFrame({ stream, payload }: Frame, out: LogLine[]): void {
    const { time, line } = splitTime(payload.toString('utf8'));
    const current = this.pending[stream] ?? { time, text: '' };
    current.text += line;
    const parts = current.text.split('\n');
    const rest = parts.pop() ?? '';
    for (const part of parts) out.push({ stream, time: current.time, line: trimCr(part) });
    this.pending[stream] = rest === '' ? null : { time: current.time, text: rest };
  }
}

function isMultiplexed(body: Buffer): boolean {
  if (body.length < HEADER) return false;
  const kind = body[0];
  return (kind === 0 || kind === 1 || kind === 2) && body[1] === 0 && body[2] === 0 && body[3] === 0;
}

/** With timestamps=true a message starts with an RFC 3339 time and one space. */
function splitTime(text: string): { time: Date; line: string } {
  const space = text.indexOf(' ');
  const time = space > 0 ? new Date(text.slice(0, space)) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) return { time: new Date(0), line: trimCr(text) };
  return { time, line: trimCr(text.slice(space + 1)) };
}

function trimCr(text: string): string {
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}
