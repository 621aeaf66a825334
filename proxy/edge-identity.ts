// Who an edge is in its reports to the API: an id made once and kept in the edge's data folder
// (`edge-id`, mode 0600), so a restarted edge, or one whose workers were replaced, is the same edge.

import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const ID_PATTERN = /^edge_[0-9a-z]{8,64}$/;

/** The id in `<dataDir>/edge-id`, made and written there on first use. */
export async function loadEdgeId(dataDir: string): Promise<string> {
  const path = join(dataDir, 'edge-id');
  const stored = await readFile(path, 'utf8').then(
    (text) => text.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw new Error(`cannot read the edge id in ${path}: ${err.message}`, { cause: err });
    },
  );
  if (stored !== null && ID_PATTERN.test(stored)) return stored;
  if (stored !== null) throw new Error(`${path} does not hold an edge id ("${stored.slice(0, 40)}"): remove the file to make a new one`);
  const id = `edge_${randomBytes(10).toString('hex')}`;
  // 'wx': two edges starting on one folder at once keep whichever id was written first.
  try {
    const file = await open(path, 'wx', 0o600);
    await file.writeFile(`${id}\n`);
    await file.close();
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadEdgeId(dataDir);
    throw new Error(`cannot write the edge id to ${path}: ${(err as Error).message}`, { cause: err });
  }
}
