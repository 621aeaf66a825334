// Which names an instance answers to, and what it takes to get there: ready instances of an
// offering group answer PROCESS.APP.internal and APP.internal; anything else answers none and
// keeps its addresses when its names change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planName, wantedNames, type NameFacts } from '../../../api/private/private-names-plan.js';

const ready: NameFacts = { app: 'db', process: 'web', desired: 'running', draining: false, health: 'healthy', offered: true };

test('a ready instance of an offering group answers its group\'s and its app\'s names; any other answers none', () => {
  const cases: [Partial<NameFacts>, string[]][] = [
    [{}, ['web.db.internal', 'db.internal']],
    [{ health: 'none' }, ['web.db.internal', 'db.internal']],
    [{ health: 'starting' }, []],
    [{ health: 'unhealthy' }, []],
    [{ draining: true }, []],
    [{ desired: 'stopped' }, []],
    [{ offered: false }, []],
  ];
  for (const [change, names] of cases) assert.deepEqual(wantedNames({ ...ready, ...change }), names, JSON.stringify(change));
});

test('not on the network: join; names right: nothing; names wrong: leave and join again at the same addresses', () => {
  assert.deepEqual(planName(ready, undefined), { type: 'join', aliases: ['web.db.internal', 'db.internal'] });
  assert.deepEqual(planName({ ...ready, offered: false }, undefined), { type: 'join', aliases: [] });
  const named = { ipv4: '10.210.0.5', ipv6: 'fd70:6965:7200::5', aliases: ['db.internal', 'web.db.internal'] };
  assert.deepEqual(planName(ready, named), { type: 'none' });
  assert.deepEqual(planName({ ...ready, draining: true }, named), { type: 'rejoin', aliases: [], ipv4: '10.210.0.5', ipv6: 'fd70:6965:7200::5' });
  assert.deepEqual(planName(ready, { ...named, aliases: [] }), { type: 'rejoin', aliases: ['web.db.internal', 'db.internal'], ipv4: '10.210.0.5', ipv6: 'fd70:6965:7200::5' });
});
