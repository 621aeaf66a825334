// `pier nodes list|describe|drain|activate`: the machines instances run on. On one Docker engine
// that is the node "local"; when the engine is a swarm manager, the swarm's nodes (address,
// state, availability, labels, capacity, instances). Draining asks Swarm to move a node's
// instances elsewhere (docs/several-machines.md).
import { defineCommand } from 'citty';
import type { NodeView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printLine, printTable } from '../output.js';

const json = { type: 'boolean', description: 'Print JSON on stdout', default: false } as const;
const nodeArg = { type: 'positional', description: 'The node: its id, name or address', valueHint: 'NODE', required: true } as const;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function labels(n: NodeView): string {
  return Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',');
}

function show(n: NodeView): void {
  printLine(`node ${n.name}  ${n.id}`);
  printLine(`  address       ${n.address}`);
  printLine(`  state         ${n.state}, ${n.availability}`);
  printLine(`  role          ${n.role}`);
  printLine(`  labels        ${labels(n) || '(none)'}`);
  printLine(`  capacity      ${n.capacity ? `${n.capacity.cpus} CPUs, ${gib(n.capacity.memoryBytes)}` : '(not reported on a single engine)'}`);
  if (n.engineVersion) printLine(`  engine        ${n.engineVersion}`);
  printLine(`  instances     ${n.instances}`);
}

const list = defineCommand({
  meta: { name: 'list', description: 'List the nodes: address, state, availability, role, labels, capacity, instances' },
  args: { json },
  async run({ args }) {
    const { nodes } = await new ApiClient(loadClientConfig(process.env)).nodes();
    if (args.json) return printJson({ nodes });
    printTable(
      ['NAME', 'ADDRESS', 'STATE', 'AVAILABILITY', 'ROLE', 'LABELS', 'CPUS', 'MEMORY', 'INSTANCES', 'ID'],
      nodes.map((n) => [n.name, n.address, n.state, n.availability, n.role, labels(n), n.capacity?.cpus ?? '', n.capacity ? gib(n.capacity.memoryBytes) : '', n.instances, n.id]),
    );
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'Show one node' },
  args: { node: nodeArg, json },
  async run({ args }) {
    const { node } = await new ApiClient(loadClientConfig(process.env)).node(String(args.node));
    if (args.json) return printJson({ node });
    show(node);
  },
});

function availabilityCommand(action: 'drain' | 'activate', description: string) {
  return defineCommand({
    meta: { name: action, description },
    args: { node: nodeArg, json },
    async run({ args }) {
      const { node } = await new ApiClient(loadClientConfig(process.env)).setNodeAvailability(String(args.node), action);
      if (args.json) return printJson({ node });
      printLine(`node ${node.name} (${node.address}) is ${node.availability}`);
    },
  });
}

export default defineCommand({
  meta: { name: 'nodes', description: 'The machines instances run on: list, describe, drain (Swarm moves their instances away), activate' },
  subCommands: {
    list,
    describe,
    drain: availabilityCommand('drain', "Drain a swarm node: Swarm moves its instances to other nodes and places none there (org-wide admin token)"),
    activate: availabilityCommand('activate', 'Make a drained swarm node active again (org-wide admin token)'),
  },
});
