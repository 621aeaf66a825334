// The data folder holds the admin token, the embedded database (its WAL carries token hashes)
// and the edge state: nobody but Pier's own user may read or change any of it. At start the
// folder is made (0700) and walked: a file or folder of ours that others may read, write or
// enter is fixed (group and other permission bits cleared) and counted, because it was written
// before Pier set its umask and nothing but Pier needs it; one owned by another user cannot be
// fixed by us and is refused, because someone else could change it under us.
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PierError } from './pier-error.js';

export interface PrivateFolderReport {
  /** Entries whose group/other permissions were removed. */
  fixed: number;
  /** A few of them, for the log. */
  examples: string[];
  /** Entries looked at. */
  checked: number;
}

const GROUP_OTHER = 0o077;

/** Creates `dir` (0700) when missing and makes everything under it private to this user. */
export async function securePrivateFolder(dir: string): Promise<PrivateFolderReport> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const uid = process.getuid?.();
  const report: PrivateFolderReport = { fixed: 0, examples: [], checked: 0 };

  const visit = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      // Removed while we walk (a database file rotating): nothing to secure.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // A symbolic link's own mode means nothing, and following one could lead out of the folder.
    if (st.isSymbolicLink()) return;
    report.checked++;
    if (uid !== undefined && uid !== 0 && st.uid !== uid) {
      throw new PierError('E_DATA_DIR_UNSAFE', `${path} in the data folder belongs to user ${st.uid}, not to the user Pier runs as (${uid})`, {
        hint: `give the data folder to Pier's user (chown -R ${uid} ${dir}) or choose another with --data-dir`,
      });
    }
    if ((st.mode & GROUP_OTHER) !== 0) {
      await chmod(path, st.mode & 0o7700);
      report.fixed++;
      if (report.examples.length < 5) report.examples.push(`${path} (was ${(st.mode & 0o777).toString(8).padStart(4, '0')})`);
    }
    if (st.isDirectory()) {
      for (const name of await readdir(path)) await visit(join(path, name));
    }
  };
  await visit(dir);
  return report;
}
