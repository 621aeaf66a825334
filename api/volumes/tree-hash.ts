// A content checksum of a file tree, the same whichever driver holds it and whatever the file
// times: sha256 over every entry's relative path, type, size and (for files) content sha256, in
// path order. A snapshot's sha256, checked again after a restore, an export and an import.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeHash {
  sha256: string;
  bytes: number;
  files: number;
}

export async function treeHash(root: string): Promise<TreeHash> {
  const total = createHash('sha256');
  let bytes = 0;
  let files = 0;
  async function walk(dir: string, rel: string): Promise<void> {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const path = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = await lstat(path);
      if (st.isDirectory()) {
        total.update(`d ${relPath}\n`);
        await walk(path, relPath);
      } else if (st.isSymbolicLink()) {
        total.update(`l ${relPath} ${await readlink(path)}\n`);
      } else if (st.isFile()) {
        total.update(`f ${relPath} ${st.size} ${await fileHash(path)}\n`);
        bytes += st.size;
        files += 1;
      } else {
        total.update(`o ${relPath}\n`);
      }
    }
  }
  await walk(root, '');
  return { sha256: total.digest('hex'), bytes, files };
}

function fileHash(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}
