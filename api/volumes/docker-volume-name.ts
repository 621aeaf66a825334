// The Docker volume that binds a Pier volume's directory, and its labels.
import { LABELS, type VolumeSpec } from '../runtime/runtime.js';

export function dockerVolumeName(volumeId: string): string {
  return `pier-${volumeId}`;
}

export function dockerVolumeSpec(volume: { id: string; appId: string }, device: string, installationId: string): VolumeSpec {
  return {
    name: dockerVolumeName(volume.id),
    device,
    labels: { [LABELS.managed]: 'true', [LABELS.installation]: installationId, [LABELS.app]: volume.appId, [LABELS.volume]: volume.id },
  };
}
