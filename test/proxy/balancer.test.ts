import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backend } from '../../proxy/backend.js';
import { Balancer } from '../../proxy/balancer.js';

function backends(count: number): Backend[] {
  return Array.from({ length: count }, (_, i) => new Backend('e', `b${i}`, '127.0.0.1', 1000 + i));
}

function load(backend: Backend, connections: number): void {
  for (let i = 0; i < connections; i++) backend.acquire({ destroy() {} });
}

test('with two backends the less loaded one is always picked', () => {
  const [a, b] = backends(2) as [Backend, Backend];
  load(a, 3);
  load(b, 1);
  const balancer = new Balancer([a, b]);
  for (let i = 0; i < 50; i++) assert.equal(balancer.pick(), b);
});

test('the most loaded of several backends is never picked', () => {
  const list = backends(4);
  list.forEach((backend, i) => load(backend, i));
  const balancer = new Balancer(list);
  for (let i = 0; i < 200; i++) assert.notEqual(balancer.pick(), list[3]);
});

test('draining and already tried backends are skipped, and none left gives undefined', () => {
  const [a, b, c] = backends(3) as [Backend, Backend, Backend];
  const balancer = new Balancer([a, b, c]);
  b.drain(1000, () => undefined);
  for (let i = 0; i < 50; i++) assert.notEqual(balancer.pick(), b);
  for (let i = 0; i < 50; i++) assert.equal(balancer.pick([a]), c);
  assert.equal(balancer.pick([a, c]), undefined);
  assert.equal(new Balancer([]).pick(), undefined);
  assert.equal(new Balancer([b]).pick(), undefined);
});
