// Runs a host tool (btrfs, cp, tar) for a volume driver: its failure becomes E_VOLUME_DRIVER with
// the tool's own words, never a stack trace.
import { execFile } from 'node:child_process';
import { PierError } from '../pier-error.js';

export function hostCommand(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new PierError('E_VOLUME_DRIVER', `${file} ${args.join(' ')} failed: ${missing ? `${file} is not installed` : stderr.trim() || err.message}`, {
          status: 500,
          hint: missing ? `install it on the server (apt-get install ${file === 'btrfs' ? 'btrfs-progs' : 'coreutils tar'})` : 'see the server log; the volume was left as it was',
          cause: err,
        }),
      );
    });
  });
}
