// The last good snapshot on disk, so an edge restarted while the API is unreachable serves what it
// served before (kamal-proxy's state file). Written atomically: temp file, fsync, rename.

import { open, readFile, rename, rm } from 'node:fs/promises';
import type { EdgeConfig } from './edge-config.js';

export class EdgeStateFile {
  constructor(readonly path: string) {}

  /** The stored snapshot as parsed JSON (validate before use), or undefined when there is none. */
  async read(): Promise<unknown> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`edge state file ${this.path} is not valid JSON`, { cause: err });
    }
  }

  async write(config: EdgeConfig): Promise<void> {
    const temp = `${this.path}.${process.pid}.tmp`;
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(config, null, 2)}\n`);
      await file.sync();
    } catch (err) {
      await file.close();
      await rm(temp, { force: true });
      throw err;
    }
    await file.close();
    await rename(temp, this.path);
  }
}
