// The API server's node agents from its configuration: --node-agent ADDRESS=URL (or
// PIER_NODE_AGENTS) and the token from a file or PIER_AGENT_TOKEN; a bad entry, a missing token or
// an unreadable file says how to write it, and the token never shows in the config's JSON.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../api/config.js';
import { tempRoot } from '../../support/btrfs-loop.js';

test('node agents: from PIER_NODE_AGENTS or --node-agent (which wins), with the token from a file or PIER_AGENT_TOKEN', async (t) => {
  const dir = await tempRoot(t);
  const tokenFile = join(dir, 'token');
  const token = 'f'.repeat(64);
  await writeFile(tokenFile, `${token}\n`);
  assert.equal(loadConfig({}).nodeAgents, undefined);
  const fromEnv = loadConfig({ PIER_NODE_AGENTS: '10.0.0.2=http://10.0.0.2:7710, 10.0.0.3=http://10.0.0.3:7710/', PIER_AGENT_TOKEN: token }).nodeAgents;
  assert.deepEqual(fromEnv?.agents, { '10.0.0.2': 'http://10.0.0.2:7710', '10.0.0.3': 'http://10.0.0.3:7710' });
  assert.equal(fromEnv?.token.reveal(), token);
  const fromFlags = loadConfig({ PIER_NODE_AGENTS: '10.0.0.2=http://10.0.0.2:7710' }, { nodeAgents: ['fd00::2=http://[fd00::2]:7710'], nodeAgentTokenFile: tokenFile });
  assert.deepEqual(fromFlags.nodeAgents?.agents, { 'fd00::2': 'http://[fd00::2]:7710' });
  assert.equal(fromFlags.nodeAgents?.token.reveal(), token);
  assert.doesNotMatch(JSON.stringify(fromFlags), new RegExp(token), 'the token is never in the config as JSON');
  assert.equal(loadConfig({ PIER_NODE_AGENTS: '10.0.0.2=http://10.0.0.2:7710', PIER_NODE_AGENT_TOKEN_FILE: tokenFile }).nodeAgents?.token.reveal(), token);
});

test('node agents: a bad entry, a repeated node, no token, a short token or a missing file are E_CONFIG_INVALID saying how', async (t) => {
  const dir = await tempRoot(t);
  const env = { PIER_AGENT_TOKEN: 'a'.repeat(32) };
  for (const bad of ['10.0.0.2', '=http://10.0.0.2:7710', '10.0.0.2=https://10.0.0.2:7710', '10.0.0.2=http://10.0.0.2', '10.0.0.2=http://u:p@10.0.0.2:7710', '10.0.0.2=http://10.0.0.2:7710/v1', 'a b=http://10.0.0.2:7710']) {
    assert.throws(() => loadConfig(env, { nodeAgents: [bad] }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /ADDRESS=/.test(err.message) && /--node-agent/.test(err.hint ?? ''), bad);
  }
  assert.throws(() => loadConfig({ ...env, PIER_NODE_AGENTS: 'n1=http://10.0.0.2:7710,n1=http://10.0.0.3:7710' }), { code: 'E_CONFIG_INVALID' });
  assert.throws(() => loadConfig({}, { nodeAgents: ['n1=http://10.0.0.2:7710'] }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /without their token/.test(err.message));
  assert.throws(() => loadConfig({ PIER_AGENT_TOKEN: 'short' }, { nodeAgents: ['n1=http://10.0.0.2:7710'] }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /16/.test(err.message) && !/short/.test(err.message));
  assert.throws(() => loadConfig({}, { nodeAgents: ['n1=http://10.0.0.2:7710'], nodeAgentTokenFile: join(dir, 'none') }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /no such file/.test(err.message));
});
