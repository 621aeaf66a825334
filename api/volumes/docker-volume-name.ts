// The Docker volume that binds a Pier volume's directory, and its labels.
import { LABELS, type VolumeSpec } from '../runtime/runtime.js';

/** One per volume and storage root: a moved volume gets a new one (the old one's device stays the source, for its stopped containers). */
export function dockerVolumeName(volumeId: string, root = 'default'): string {
  // A node's root is `node:ADDRESS` (agent-roots.ts): Docker's names take no colon.
  return root === 'default' ? `pier-${volumeId}` : `pier-${volumeId}-${root}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

export function dockerVolumeSpec(volume: { id: string; appId: string; root?: string }, device: string, installationId: string): VolumeSpec {
  return {
    name: dockerVolumeName(volume.id, volume.root),
    device,
    labels: { [LABELS.managed]: 'true', [LABELS.installation]: installationId, [LABELS.app]: volume.appId, [LABELS.volume]: volume.id },
  };
}
