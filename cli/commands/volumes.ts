// `pier volumes`: an app's volumes (list, create, describe, delete, undelete), snapshots of one,
// restoring a snapshot into a new volume or in place, and moving a volume to another storage root.
import { defineCommand } from 'citty';
import type { SnapshotView, VolumeView } from '../../api/volumes/volume-views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { printJson, printLine, printTable, progress } from '../output.js';

const appArg = { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true } as const;
const jsonArg = { type: 'boolean', description: 'Print JSON on stdout', default: false } as const;
const client = () => new ApiClient(loadClientConfig(process.env));

export function formatBytes(n: number | null): string {
  if (n === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

const list = defineCommand({
  meta: { name: 'list', description: "List an app's volumes" },
  args: {
    app: appArg,
    deleted: { type: 'boolean', description: "List deleted volumes, kept until UNDELETE UNTIL: the app's, and those of a deleted app of that name (its final snapshots)", default: false },
    json: jsonArg,
  },
  async run({ args }) {
    const { volumes } = await client().listVolumes(args.app, args.deleted);
    if (args.json) return printJson({ volumes });
    if (args.deleted) return printTable(['NAME', 'ID', 'DELETED', 'UNDELETE UNTIL'], volumes.map((v) => [v.name, v.id, v.deletedAt, v.purgeAfter]));
    printTable(['NAME', 'PROCESS', 'PATH', 'DRIVER', 'LIMIT', 'ATTACHED', 'STATE'], volumes.map((v) => [v.name, v.process, v.path, v.driver, v.sizeLimitBytes === null ? null : formatBytes(v.sizeLimitBytes), v.attachedInstance, v.state]));
  },
});

const create = defineCommand({
  meta: { name: 'create', description: 'Create an empty volume; a [[volumes]] entry of that name mounts it' },
  args: {
    name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true },
    app: appArg,
    size: { type: 'string', description: 'Size limit, e.g. 1GiB (enforced on btrfs)', valueHint: 'SIZE' },
    root: { type: 'string', description: 'The storage root to make it on (pier server --volume-root NAME=PATH; default: "default", the volumes folder; on a swarm, node:ADDRESS is that node, and the group naming it runs there)', valueHint: 'ROOT' },
    json: jsonArg,
  },
  async run({ args }) {
    const { volume } = await client().createVolume(args.app, { name: String(args.name), size: args.size, root: args.root });
    if (args.json) return printJson({ volume });
    printLine(`created volume ${volume.name} (${volume.id}, ${volume.driver}, root ${volume.root})`);
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'A volume: where it is mounted, what holds it, its usage and snapshots' },
  args: { name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true }, app: appArg, json: jsonArg },
  async run({ args }) {
    const d = await client().describeVolume(args.app, String(args.name));
    if (args.json) return printJson(d);
    const v = d.volume;
    printLine(`volume ${v.name} (${v.id}): ${v.state}, ${v.driver} driver on root ${v.root}`);
    printLine(`  mounted at ${v.path ?? '-'} in process ${v.process ?? '-'}${v.perInstance ? ` (slot ${v.slot})` : ''}; attached to ${v.attachedInstance ?? 'nothing'}`);
    printLine(`  used ${formatBytes(d.usedBytes)}${v.sizeLimitBytes === null ? '' : ` of ${formatBytes(v.sizeLimitBytes)}`}`);
    printSnapshots(d.snapshots);
  },
});

const remove = defineCommand({
  meta: { name: 'delete', description: 'Delete a volume (refused while a running instance holds it); a final snapshot is kept and undelete brings it back' },
  args: { name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true }, app: appArg, yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false }, json: jsonArg },
  async run({ args }) {
    if (!args.yes) await confirm(`delete volume ${args.name} of ${args.app}?`);
    const d = await client().deleteVolume(args.app, String(args.name));
    if (args.json) return printJson(d);
    printLine(`deleted volume ${d.volume.name}; final snapshot ${d.finalSnapshot.id} kept until ${d.volume.purgeAfter} (pier volumes undelete --app ${args.app} ${d.volume.name})`);
  },
});

const undelete = defineCommand({
  meta: { name: 'undelete', description: 'Bring a deleted volume back from its final snapshot' },
  args: { name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true }, app: appArg, json: jsonArg },
  async run({ args }) {
    const { volume } = await client().undeleteVolume(args.app, String(args.name));
    if (args.json) return printJson({ volume });
    printLine(`volume ${volume.name} (${volume.id}) is back`);
  },
});

const move = defineCommand({
  meta: {
    name: 'move',
    description:
      "Move a volume with its instance to another storage root: copied while it runs, then drained, stopped, the last changes sent (between a btrfs and a dir root: the whole volume again) and checked, started on the target (the source is kept read-only for a day). --group moves the process's other volumes with it, with one cutover (on a swarm a process's volumes move together or not at all)",
  },
  args: {
    name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true },
    app: appArg,
    to: { type: 'string', description: 'The storage root to move it to (pier server --volume-root NAME=PATH; "default" is the volumes folder; on a swarm, node:ADDRESS moves it and its writer to that node)', valueHint: 'ROOT', required: true },
    group: { type: 'boolean', description: "Move every volume of the volume's process that is not on that root (other [[volumes]] entries, every slot of a per-instance one) with it, with one cutover", default: false },
    json: jsonArg,
  },
  async run({ args }) {
    if (!args.json) progress(`moving volume ${args.name}${args.group ? ' and the other volumes of its process' : ''} to root ${args.to}`);
    const r = await client().moveVolume(args.app, String(args.name), String(args.to), args.group);
    if (args.json) return printJson(r);
    const m = r.move;
    const moved = r.group.length > 1 ? `volumes ${r.group.map((g) => g.volume.name).join(', ')} moved together` : `volume ${r.volume.name} moved`;
    const sent = r.group.reduce((n, g) => n + g.move.bytesMoved, 0);
    printLine(`${moved} from ${m.from} to ${m.to}: ${formatBytes(sent)} sent, downtime ${m.downtimeMs === null ? '-' : `${m.downtimeMs} ms`}`);
    printLine(`  phases: ${m.phases.map((p) => `${p.phase} ${p.ms} ms`).join(', ')}`);
    if (m.steps.length) printLine(`  downtime steps (ms since the cutover began): ${m.steps.map((s) => `${s.step} ${s.ms}`).join(', ')}`);
    printLine(`  the source on ${m.from} is kept read-only until ${m.retainUntil ?? '-'}`);
  },
});

const snapshot = defineCommand({
  meta: { name: 'snapshot', description: "Take a snapshot of a volume now (held as its consistency says: pause, hook or none)" },
  args: { name: { type: 'positional', description: 'The volume', valueHint: 'NAME', required: true }, app: appArg, json: jsonArg },
  async run({ args }) {
    const { snapshot: s } = await client().snapshotVolume(args.app, String(args.name));
    if (args.json) return printJson(s);
    printLine(`snapshot ${s.id} of ${s.volume}: ${s.files} files, ${formatBytes(s.bytes)}, ${s.consistency}, sha256 ${s.sha256}`);
  },
});

const restore = defineCommand({
  meta: { name: 'restore', description: 'Restore a snapshot into a new volume (default) or in place (stops the instance, keeps a pre-restore snapshot, starts it again)' },
  args: {
    snapshot: { type: 'positional', description: 'The snapshot', valueHint: 'SNAPSHOT', required: true },
    app: appArg,
    'in-place': { type: 'boolean', description: "Restore into the snapshot's own volume", default: false },
    name: { type: 'string', description: 'Name of the new volume (without --in-place)', valueHint: 'NAME' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask before a restore in place (required without a terminal)', default: false },
    json: jsonArg,
  },
  async run({ args }) {
    const id = String(args.snapshot);
    if (args['in-place'] && !args.yes) await confirm(`restore snapshot ${id} in place? its instance stops meanwhile`);
    if (args['in-place']) progress(`stopping the instance and restoring ${id}`);
    const r = await client().restoreSnapshot(args.app, id, { inPlace: args['in-place'], name: args.name });
    if (args.json) return printJson(r);
    printLine(
      r.preRestoreSnapshot
        ? `volume ${r.volume.name} restored from ${id}; the data before is in snapshot ${r.preRestoreSnapshot.id}`
        : `snapshot ${id} restored into a new volume ${r.volume.name} (${r.volume.id})`,
    );
  },
});

const exportCmd = defineCommand({
  meta: { name: 'export', description: 'Write a snapshot to a portable file (header with sha256, then a tar of its files)' },
  args: {
    snapshot: { type: 'positional', description: 'The snapshot', valueHint: 'SNAPSHOT', required: true },
    app: appArg,
    output: { type: 'string', alias: 'o', description: 'The file to write', valueHint: 'FILE', required: true },
    json: jsonArg,
  },
  async run({ args }) {
    const r = await client().exportSnapshot(args.app, String(args.snapshot), String(args.output));
    if (args.json) return printJson({ snapshot: String(args.snapshot), file: args.output, bytes: r.bytes });
    printLine(`wrote ${args.output} (${formatBytes(r.bytes)})`);
  },
});

const importCmd = defineCommand({
  meta: { name: 'import', description: 'Import a file made by export as a new snapshot (checked before it is kept); restore it into a volume after' },
  args: {
    file: { type: 'positional', description: 'The file', valueHint: 'FILE', required: true },
    app: appArg,
    root: { type: 'string', description: 'The storage root to import it to (pier server --volume-root NAME=PATH; default: "default", the volumes folder); a volume restored from it is made there', valueHint: 'ROOT' },
    json: jsonArg,
  },
  async run({ args }) {
    const { snapshot: s } = await client().importSnapshot(args.app, String(args.file), args.root === undefined ? undefined : String(args.root));
    if (args.json) return printJson(s);
    printLine(`imported snapshot ${s.id} of ${s.volume} on root ${s.root}: ${s.files} files, ${formatBytes(s.bytes)}, sha256 ${s.sha256}`);
    printLine(`restore it: pier volumes restore --app ${args.app} ${s.id} [--name NAME]`);
  },
});

export function printSnapshots(snapshots: SnapshotView[]): void {
  if (snapshots.length === 0) return printLine('no snapshots');
  printTable(['ID', 'VOLUME', 'KIND', 'SIZE', 'FILES', 'CONSISTENCY', 'CREATED', 'EXPIRES'], snapshots.map((s) => [s.id, s.volume, s.kind, formatBytes(s.bytes), s.files, s.consistency, s.createdAt, s.expiresAt]));
}

export type { VolumeView };

export default defineCommand({
  meta: { name: 'volumes', description: 'Volumes of an app: list, create, describe, delete, undelete, snapshot, restore, export, import, move' },
  subCommands: { list, create, describe, delete: remove, undelete, snapshot, restore, export: exportCmd, import: importCmd, move },
});
