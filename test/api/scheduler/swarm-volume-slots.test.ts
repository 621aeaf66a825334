// Per-instance volumes on a swarm, the pure parts: slot k's volume id is named after slot 0's, the
// one mount is a Go template on Swarm's task slot that picks slot 0's values for slot 1 and the
// named-after ones for the others (text/template as Swarm expands it: checked here by expanding it
// the way Swarm does for the forms Pier writes), which processes keep one task (a shared volume),
// and what is refused at deploy time (spread one per node: the group's volumes are on one node).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest } from '../../../api/manifest.js';
import { refuseOnSwarm } from '../../../api/scheduler/swarm-reconciler.js';
import { perSlot, sharedVolumeProcesses, slotVolumeId, volumeProcesses } from '../../../api/scheduler/swarm-volumes.js';

/** Expands the two template forms perSlot writes, as Swarm's text/template does for a task of `slot`. */
function expand(template: string, slot: number): string {
  const m = /^\{\{if eq \.Task\.Slot "1"\}\}(.*)\{\{else\}\}(.*)\{\{end\}\}$/.exec(template);
  if (!m) return template;
  return slot === 1 ? (m[1] as string) : (m[2] as string).split('{{.Task.Slot}}').join(String(slot));
}

test('slot k\'s volume is named after slot 0\'s; the templated mount gives each Swarm slot N the volume of Pier slot N - 1', () => {
  const first = 'vol_abc123def456';
  assert.equal(slotVolumeId(first, 1), 'vol_abc123def456-s2');
  assert.equal(slotVolumeId(first, 4), 'vol_abc123def456-s5');
  const device = perSlot(`/v/volumes/${first}`, '/v/volumes/vol_abc123def456-sPIERSLOTMARK');
  assert.equal(device, '{{if eq .Task.Slot "1"}}/v/volumes/vol_abc123def456{{else}}/v/volumes/vol_abc123def456-s{{.Task.Slot}}{{end}}');
  assert.equal(expand(device, 1), `/v/volumes/${first}`);
  for (const slot of [2, 3, 10]) assert.equal(expand(device, slot), `/v/volumes/${slotVolumeId(first, slot - 1)}`);
  // A value that is the same for every slot is left as it is (no template).
  assert.equal(perSlot('true', 'true'), 'true');
});

const manifest = (placement: string, perInstance: boolean, count: number) =>
  parseManifest(`app = "db"
image = "local/db:1"

[processes.db]
count = ${count}
${placement}

[processes.web]

[[volumes]]
name = "data"
process = "db"
path = "/data"
per_instance = ${perInstance}

[[volumes]]
name = "shared"
process = "web"
path = "/srv"
`);

test('a shared volume keeps its process at one task; per-instance volumes do not', () => {
  const m = manifest('', true, 3);
  assert.deepEqual([...volumeProcesses(m)].sort(), ['db', 'web']);
  assert.deepEqual([...sharedVolumeProcesses(m)], ['web']);
});

test('refused on a swarm: per-instance volumes of several instances spread one per node (E_SWARM_VOLUMES, saying why); several instances on the volumes\' node are not', () => {
  assert.equal(refuseOnSwarm(manifest('', true, 3)), null);
  assert.equal(refuseOnSwarm(manifest('placement = { spread = "node" }', true, 1)), null);
  const refused = refuseOnSwarm(manifest('placement = { spread = "node" }', true, 2));
  assert.equal(refused?.code, 'E_SWARM_VOLUMES');
  assert.match(refused?.message ?? '', /one per node \(spread = "node"\) with a per-instance volume data/);
  assert.match(refused?.hint ?? '', /drop spread = "node"/);
});
