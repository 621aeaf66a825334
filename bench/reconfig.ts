// 1000 configuration changes under load, edge only: each change rewrites the snapshot file and
// sends SIGHUP (backend swaps that drain, a listener added and removed), while short and
// long-lived connections run; counts failures and measures how soon each change is live.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { waitForPorts } from './backends.js';
import { startChurn, type ChurnResult } from './churn.js';
import { startDaemon } from './tools.js';

const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface ReconfigResult extends ChurnResult {
  changes: number;
  /** SIGHUP → /status shows the version, ms. */
  liveP50ms: number;
  liveP99ms: number;
  liveMaxMs: number;
}

export async function reconfigUnderLoad(dir: string, port: number, echoA: number, echoB: number, changes: number): Promise<ReconfigResult> {
  const file = join(dir, 'reconfig.json');
  await writeFile(file, JSON.stringify(snapshot(1, port, echoA, echoB)));
  const edge = startDaemon(process.execPath, [PIER_BIN, 'edge', '--config', file, '--workers', '2', '--admin-listen', '127.0.0.1:0', '--data-dir', join(dir, 'reconfig-data'), '--drain-timeout', '600'], {
    env: { ...process.env, PIER_LOG_LEVEL: 'warn' },
  });
  try {
    await waitForPorts([port], [edge]);
    let admin: string | undefined;
    for (let i = 0; i < 100 && admin === undefined; i++) {
      admin = /admin on (http:\/\/\S+)/.exec(edge.output())?.[1];
      if (admin === undefined) await delay(50);
    }
    if (admin === undefined) throw new Error(`the edge did not print its admin address:\n${edge.output()}`);

    const churn = startChurn({ port, concurrency: 16, longLived: 4, maxConnections: 2_000_000, maxMs: 15 * 60_000 });
    const live: number[] = [];
    for (let v = 2; v <= changes + 1; v++) {
      await writeFile(file, JSON.stringify(snapshot(v, port, echoA, echoB)));
      const sent = performance.now();
      edge.child.kill('SIGHUP');
      // Bounded: 5 s per change.
      for (;;) {
        const status = (await (await fetch(`${admin}/status`)).json()) as { version: number };
        if (status.version >= v) break;
        if (performance.now() - sent > 5000) throw new Error(`change ${v} not live after 5 s:\n${edge.output().slice(-3000)}`);
        await delay(1);
      }
      live.push(performance.now() - sent);
    }
    const result = await churn.stop();
    live.sort((a, b) => a - b);
    const at = (q: number): number => live[Math.min(live.length - 1, Math.floor(q * live.length))] ?? NaN;
    return { ...result, changes, liveP50ms: at(0.5), liveP99ms: at(0.99), liveMaxMs: live[live.length - 1] ?? NaN };
  } finally {
    await edge.stop();
  }
}

/** Version v: backend ids rotate (the old one drains), B comes and goes, a second listener every 10th. */
function snapshot(v: number, port: number, echoA: number, echoB: number): object {
  const backends = [{ id: `a${v % 3}`, address: '127.0.0.1', port: echoA }];
  if (v % 2 === 0) backends.push({ id: 'b', address: '127.0.0.1', port: echoB });
  const endpoints = [{ id: 'churn', app: 'bench', bind: [{ address: '127.0.0.1', port }], proxyProtocol: 'none', backends }];
  if (v % 20 < 10) endpoints.push({ id: 'extra', app: 'bench', bind: [{ address: '127.0.0.1', port: port + 1 }], proxyProtocol: 'none', backends });
  return { version: v, endpoints };
}
