// The name of the node each instance runs on, for views: "local" on a single Docker engine (the
// server's own node row). Read whole: the nodes table holds one row per engine, a handful at most.
import type { Db } from '../db/database.js';
import { nodes } from '../db/schema/index.js';

export type NodeNames = (nodeId: string) => string;

export async function loadNodeNames(db: Db): Promise<NodeNames> {
  const names = new Map((await db.select({ id: nodes.id, name: nodes.name }).from(nodes)).map((n) => [n.id, n.name]));
  return (nodeId) => names.get(nodeId) ?? nodeId;
}
