// Makes sure the soft limit of open files (`nofile`) is the hard limit at start, before any worker
// is forked (they inherit it): every proxied connection takes two descriptors, and the usual soft
// default (1024) would cap an edge at about 500 connections. Node itself raises the soft limit at
// start on Linux (node.cc, PlatformInit), so this usually finds nothing to do and says so; where it
// is still lower (another runtime, a limit changed since), Node has no setrlimit, so util-linux's
// `prlimit` changes it for our pid. Either way one log line says what the limit is, or why it could
// not be raised.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface FdLimitOutcome {
  /** Soft and hard limits before (null where /proc/self/limits is not readable). */
  before: { soft: number | null; hard: number | null };
  soft: number | null;
  raised: boolean;
  /** Why it was not raised, when it was not. */
  reason?: string;
}

const PRLIMIT_TIMEOUT_MS = 5000;

export async function raiseFdLimit(log: Logger, pid = process.pid): Promise<FdLimitOutcome> {
  const before = await readLimits(pid);
  const done = (outcome: FdLimitOutcome): FdLimitOutcome => {
    const fields = { soft: outcome.soft, hard: before.hard, before: before.soft };
    if (outcome.raised) log.info(fields, 'open files limit raised to the hard limit');
    else log.warn({ ...fields, reason: outcome.reason }, 'open files limit not raised');
    return outcome;
  };
  if (before.soft === null || before.hard === null) return done({ before, soft: before.soft, raised: false, reason: 'cannot read /proc/self/limits' });
  if (before.soft >= before.hard) {
    const outcome = { before, soft: before.soft, raised: false, reason: 'already at the hard limit' };
    log.info({ soft: before.soft, hard: before.hard }, 'open files limit is already the hard limit');
    return outcome;
  }
  const hard = String(before.hard);
  const error = await new Promise<string | null>((resolve) => {
    try {
      execFile('prlimit', ['--pid', String(pid), `--nofile=${hard}:${hard}`], { timeout: PRLIMIT_TIMEOUT_MS }, (err, _stdout, stderr) => {
        if (err === null) return resolve(null);
        const code = (err as NodeJS.ErrnoException).code;
        resolve(code === 'ENOENT' ? 'prlimit (util-linux) is not installed' : `prlimit failed: ${String(stderr).trim() || err.message}`);
      });
    } catch (err) {
      // node --permission without --allow-child-process throws here.
      resolve(`cannot run prlimit: ${(err as Error).message}`);
    }
  });
  const after = await readLimits(pid);
  if (error !== null) return done({ before, soft: after.soft, raised: false, reason: error });
  if (after.soft !== before.hard) return done({ before, soft: after.soft, raised: false, reason: `prlimit ran but the soft limit is ${after.soft}` });
  return done({ before, soft: after.soft, raised: true });
}

async function readLimits(pid: number): Promise<{ soft: number | null; hard: number | null }> {
  const text = await readFile(pid === process.pid ? '/proc/self/limits' : `/proc/${pid}/limits`, 'utf8').catch(() => null);
  const line = text?.split('\n').find((l) => l.startsWith('Max open files'));
  if (line === undefined) return { soft: null, hard: null };
  const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/);
  const value = (v: string | undefined): number | null => (v === undefined ? null : v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: value(soft), hard: value(hard) };
}
