// The Docker volume that binds a Pier volume's directory, and its labels.
import { LABELS, type VolumeSpec } from '../runtime/runtime.js';

/** One per volume and storage root: a moved volume gets a new one (the old one's device stays the source, for its stopped containers). */
export function dockerVolumeName(volumeId: string, root = 'default'): string {
  return root === 'default' ? `pier-${volumeId}` : `pier-${volumeId}-${root}`;
}

export function dockerVolumeSpec(volume: { id: string; appId: string; root?: string }, device: string, installationId: string): VolumeSpec {
  return {
    name: dockerVolumeName(volume.id, volume.root),
    device,
    labels: { [LABELS.managed]: 'true', [LABELS.installation]: installationId, [LABELS.app]: volume.appId, [LABELS.volume]: volume.id },
  };
}
