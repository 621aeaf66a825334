// The seam between Pier's volumes and the host's storage: one small interface, two
// implementations (drivers/dir-driver.ts, drivers/btrfs-driver.ts), either of them on another node
// through its agent (drivers/remote-driver.ts, `pier agent`), and one contract suite
// (test/api/volumes/volume-driver-contract.ts). A driver owns one storage root:
// `<root>/volumes/<id>` are the volumes (what Docker bind-mounts), `<root>/snapshots/<id>` the
// read-only snapshots. It knows nothing of apps, instances or the database.

import type { Readable, Writable } from 'node:stream';
import type { HostStream } from './host-stream.js';
import type { TreeHash } from './tree-hash.js';

export type DriverKind = 'dir' | 'btrfs';

/** A volume or a snapshot of the root, for the calls that read either where it is. */
export type DriverData = { volume: string } | { snapshot: string };

/** What a portable snapshot file says of its snapshot (snapshot-archive.ts, the header's `snapshot`). */
export interface ArchivedSnapshot {
  id: string;
  volume: string;
  sha256: string;
  bytes: number;
  files: number;
  createdAt: string;
}

/** A snapshot read from a portable file: the volume it came from, and its tree as checked after extraction. */
export interface ImportedSnapshot {
  volumeName: string;
  sha256: string;
  bytes: number;
  files: number;
}

export interface VolumeDriver {
  readonly kind: DriverKind;
  readonly root: string;
  /** Makes an empty volume; returns its host path. */
  create(volumeId: string, options?: { sizeLimitBytes?: number | null | undefined }): Promise<string>;
  /** The host path of a volume (whether or not it exists). */
  volumePath(volumeId: string): string;
  snapshotPath(snapshotId: string): string;
  exists(volumeId: string): Promise<boolean>;
  /** Removes a volume and its data. Gone already is fine. */
  remove(volumeId: string): Promise<void>;
  /** A read-only copy of the volume as it is now. The caller holds the writer (stopped, paused or not). */
  snapshot(volumeId: string, snapshotId: string): Promise<void>;
  /** A new volume holding the snapshot's data. */
  restore(snapshotId: string, volumeId: string, options?: { sizeLimitBytes?: number | null | undefined }): Promise<string>;
  /** The volume's data becomes the snapshot's, at once (a swap): the caller has stopped its writer. */
  replace(volumeId: string, snapshotId: string): Promise<void>;
  removeSnapshot(snapshotId: string): Promise<void>;
  /**
   * A snapshot made from a directory of files already on this root's filesystem (an import
   * extracts into `stagingPath()` first). The staging directory is consumed.
   */
  adopt(stagingDir: string, snapshotId: string): Promise<void>;
  /** A fresh directory on the root's filesystem to stage an import or export in. */
  staging(name: string): Promise<string>;
  /** Removes a staging directory that was not adopted. */
  discard(stagingDir: string): Promise<void>;

  // A move (api/volumes/volume-mover.ts) sends snapshots from one root's driver to another's as a
  // byte stream, so that the same code can later cross the network to another node.
  /** A snapshot as a stream: btrfs send (incremental against `parentId`, which the receiver has); dir: a tar of it all. */
  send(snapshotId: string, parentId: string | null): HostStream<Readable>;
  /** Receives a stream made by `send` of the same kind of driver as the snapshot `snapshotId` of this root. */
  receive(snapshotId: string): HostStream<Writable>;
  /** What identifies a snapshot's data (btrfs: its UUID; dir: its tree sha256). */
  fingerprint(snapshotId: string): Promise<string>;
  /** The fingerprint a received snapshot came from (btrfs: its received UUID, set only once the stream was whole; dir: its tree sha256). */
  receivedFingerprint(snapshotId: string): Promise<string | null>;
  /** Keeps a volume from being written (btrfs: a read-only subvolume; dir: nothing mounts it any more). */
  freeze(volumeId: string): Promise<void>;
  /**
   * Writes the root's dirty data to disk now. A move calls it on both roots before its cutover: a
   * snapshot or a receive commits a btrfs transaction, which first writes out what earlier writes
   * left dirty (a 1 GiB pre-copy: 1.5 s), and that must not happen while the instance is down.
   */
  flush(): Promise<void>;

  // Reads of the data itself happen where the data is (the API server reads no file under a
  // remote root): a size, a checksum, and a snapshot as a portable file, out and in.
  /** Bytes the data takes on disk (`du -sb`); gone is E_VOLUME_MISSING. */
  usage(of: DriverData): Promise<number>;
  /** Its content checksum (tree-hash.ts); gone is E_VOLUME_MISSING. */
  treeHash(of: DriverData): Promise<TreeHash>;
  /** The snapshot as a portable file (snapshot-archive.ts: header, tar, checksum trailer), made here; a failed tar ends the stream with an error. */
  exportSnapshot(snapshotId: string, header: ArchivedSnapshot): HostStream<Readable>;
  /**
   * Reads a portable file into the new snapshot `snapshotId`: checked, extracted and adopted here.
   * A truncated or damaged file is E_SNAPSHOT_CORRUPT and leaves nothing behind.
   */
  importSnapshot(snapshotId: string, file: Readable): Promise<ImportedSnapshot>;
}
