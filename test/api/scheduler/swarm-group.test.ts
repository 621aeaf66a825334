// The mapping from a release's process group to a Swarm service, without an engine: names, ports,
// placement, restart policy, env templates and the Docker ServiceSpec it becomes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest } from '../../../api/manifest.js';
import { toDockerServiceSpec } from '../../../api/runtime/swarm-service-spec.js';
import { volumeHomeDiffers } from '../../../api/runtime/swarm-services.js';
import { FIRST_DELAY_MS, WINDOW_MS } from '../../../api/scheduler/crash-backoff.js';
import { swarmGroupSpec, swarmImage, swarmServiceName } from '../../../api/scheduler/swarm-group.js';

const manifest = parseManifest(`app = "shop"
image = "local/shop:1"
env = { MODE = "prod" }

[processes.web]
cmd = ["serve", "--port", "8080"]
env = { MODE = "web" }
check = { type = "tcp", port = 9090 }
placement = { spread = "node", labels = { disk = "ssd", zone = "a" } }

[processes.worker]

[[endpoints]]
process = "web"
port = 443
target = 8080

[[endpoints]]
process = "web"
port = 80
target = 8081
`);

const release = { id: 'rel_1', version: 7, imageId: 'sha256:' + 'a'.repeat(64), manifest };
const input = { app: { id: 'app_1', name: 'shop' }, release, installationId: 'inst_1', replicas: 2 };

test('a group becomes one replicated service named after app, version and process, labelled like Pier\'s containers', () => {
  const spec = swarmGroupSpec({ ...input, process: 'web' });
  assert.match(spec.name, /^pier-shop-[0-9a-f]{6}-v7-web$/);
  assert.equal(spec.image, release.imageId);
  assert.deepEqual(spec.cmd, ['serve', '--port', '8080']);
  assert.equal(spec.replicas, 2);
  assert.deepEqual(spec.labels, { 'dev.pier.managed': 'true', 'dev.pier.installation': 'inst_1', 'dev.pier.app': 'app_1', 'dev.pier.release': 'rel_1', 'dev.pier.process': 'web' });
  assert.equal(spec.env.MODE, 'web', 'the process env wins over the app env');
  assert.equal(spec.env.PIER_RELEASE, '7');
  assert.equal(spec.env.PIER_INSTANCE, '{{.Task.Name}}');
});

test('the endpoint targets of the process and its check port are published; placement and restart come from the manifest and crash backoff', () => {
  const spec = swarmGroupSpec({ ...input, process: 'web' });
  assert.deepEqual(spec.ports, [8080, 8081, 9090]);
  assert.deepEqual(spec.placement, { onePerNode: true, nodeLabels: { disk: 'ssd', zone: 'a' } });
  assert.deepEqual(spec.restart, { delayMs: FIRST_DELAY_MS, windowMs: WINDOW_MS });
  const worker = swarmGroupSpec({ ...input, process: 'worker' });
  assert.deepEqual(worker.ports, []);
  assert.deepEqual(worker.placement, { onePerNode: false, nodeLabels: {} });
  assert.equal(worker.cmd, undefined);
});

test('an unknown process is E_PROCESS_NOT_FOUND naming the ones there are', () => {
  assert.throws(() => swarmGroupSpec({ ...input, process: 'cron' }), (err: Error & { code?: string; hint?: string }) => {
    assert.equal(err.code, 'E_PROCESS_NOT_FOUND');
    assert.match(err.hint ?? '', /web, worker/);
    return true;
  });
});

test('the Docker ServiceSpec: host-mode ports without a published port, dnsrr, label constraints, MaxReplicas 1 for spread, restart policy in nanoseconds, Args not Command', () => {
  const docker = toDockerServiceSpec(swarmGroupSpec({ ...input, process: 'web' }));
  assert.deepEqual(docker.EndpointSpec, {
    Mode: 'dnsrr',
    Ports: [8080, 8081, 9090].map((p) => ({ Protocol: 'tcp', TargetPort: p, PublishMode: 'host' })),
  });
  assert.deepEqual(docker.TaskTemplate.Placement, { Constraints: ['node.labels.disk==ssd', 'node.labels.zone==a'], MaxReplicas: 1 });
  assert.deepEqual(docker.TaskTemplate.RestartPolicy, { Condition: 'any', Delay: FIRST_DELAY_MS * 1e6, MaxAttempts: 0, Window: WINDOW_MS * 1e6 });
  assert.deepEqual(docker.TaskTemplate.ContainerSpec.Args, ['serve', '--port', '8080']);
  assert.equal('Command' in docker.TaskTemplate.ContainerSpec, false);
  assert.ok(docker.TaskTemplate.ContainerSpec.Env.includes('MODE=web'));
  assert.equal(docker.TaskTemplate.ContainerSpec.StopGracePeriod, 10e9);
  assert.deepEqual(docker.Mode, { Replicated: { Replicas: 2 } });
  assert.equal('UpdateConfig' in docker, false, 'Swarm\'s rolling update is never configured');

  const worker = toDockerServiceSpec(swarmGroupSpec({ ...input, process: 'worker', replicas: 0 }));
  assert.deepEqual(worker.TaskTemplate.Placement, { Constraints: [] });
  assert.deepEqual(worker.EndpointSpec.Ports, []);
  assert.equal('Args' in worker.TaskTemplate.ContainerSpec, false, 'no cmd keeps the image\'s CMD');
  assert.deepEqual(worker.Mode, { Replicated: { Replicas: 0 } });
});

test('service names stay within 63 characters of [a-zA-Z0-9-], keeping the app\'s tag, version and process', () => {
  const ab = { id: 'app_1', name: 'a_b' };
  const tag = swarmServiceName(ab, 1, 'web').split('-')[3];
  assert.match(tag ?? '', /^[0-9a-f]{6}$/);
  assert.equal(swarmServiceName(ab, 1, 'web'), `pier-a-b-${tag}-v1-web`);
  // The same name in another environment or org is another app: another service name.
  assert.notEqual(swarmServiceName({ id: 'app_2', name: 'a_b' }, 1, 'web'), swarmServiceName(ab, 1, 'web'));
  const long = swarmServiceName({ id: 'app_3', name: 'x'.repeat(60) }, 12345, 'worker');
  assert.ok(long.length <= 63, long);
  assert.match(long, /^pier-x+-[0-9a-f]{6}-v12345-worker$/);
  assert.ok(swarmServiceName({ id: 'app_4', name: 'a' }, 1, 'p'.repeat(63)).length <= 63);
  // A scale down's next generation: its own name, the generation kept even when the app is cut.
  assert.equal(swarmServiceName(ab, 1, 'web', 2), `pier-a-b-${tag}-v1-web-g2`);
  assert.match(swarmServiceName({ id: 'app_3', name: 'x'.repeat(60) }, 12345, 'worker', 3), /^pier-x+-[0-9a-f]{6}-v12345-worker-g3$/);
});

test('a later generation is labelled with it; the release\'s secrets are in the env, Pier\'s own names win', () => {
  const spec = swarmGroupSpec({ ...input, process: 'web', generation: 1, secrets: { API_KEY: 'k', PIER_APP: 'spoof' } });
  assert.equal(spec.labels['dev.pier.swarm-generation'], '1');
  assert.match(spec.name, /-g1$/);
  assert.equal(spec.env.API_KEY, 'k');
  assert.equal(spec.env.PIER_APP, input.app.name);
  assert.equal(swarmGroupSpec({ ...input, process: 'web' }).labels['dev.pier.swarm-generation'], undefined, 'generation 0 carries no label');
});

test('nodes run the release\'s registry digest when other machines reach that registry, else the image id', () => {
  const id = 'sha256:' + 'b'.repeat(64);
  const digest = (ref: string) => swarmImage({ imageId: id, imageDigest: ref });
  const sum = '@sha256:' + 'c'.repeat(64);
  assert.equal(digest(`198.18.4.254:5000/shop${sum}`), `198.18.4.254:5000/shop${sum}`, 'a registry on an address the nodes reach');
  assert.equal(digest(`registry.example.com/team/shop${sum}`), `registry.example.com/team/shop${sum}`);
  assert.equal(digest(`library/busybox${sum}`), `library/busybox${sum}`, 'Docker Hub, by digest');
  assert.equal(digest(`127.0.0.1:40123/shop${sum}`), id, 'Pier\'s loopback registry is the API machine\'s alone');
  assert.equal(digest(`localhost:5000/shop${sum}`), id);
  assert.equal(digest(`[::1]:5000/shop${sum}`), id);
  assert.equal(digest(id), id, 'no digest: the id, present on every node');
  assert.equal(swarmImage({ imageId: id }), id);
  const spec = swarmGroupSpec({ ...input, release: { ...release, imageDigest: `198.18.4.254:5000/shop${sum}` }, process: 'web' });
  assert.equal(spec.image, `198.18.4.254:5000/shop${sum}`);
  assert.equal((toDockerServiceSpec(spec).TaskTemplate as { ContainerSpec: { Image: string } }).ContainerSpec.Image, `198.18.4.254:5000/shop${sum}`);
});

test('a group with volumes is pinned to their node and binds each volume\'s directory there as a local Docker volume', () => {
  const mounts = [{ name: 'pier-vol_1-node-10.0.0.2', device: '/srv/pier/volumes/vol_1', target: '/data', labels: { 'dev.pier.volume': 'vol_1' } }];
  const spec = swarmGroupSpec({ ...input, process: 'worker', volumes: { nodeId: 'n2', mounts } });
  assert.deepEqual(spec.placement, { onePerNode: false, nodeLabels: {}, nodeId: 'n2' });
  const docker = toDockerServiceSpec(spec);
  assert.deepEqual(docker.TaskTemplate.Placement, { Constraints: ['node.id==n2'] });
  assert.deepEqual(docker.TaskTemplate.ContainerSpec.Mounts, [
    {
      Type: 'volume',
      Source: 'pier-vol_1-node-10.0.0.2',
      Target: '/data',
      VolumeOptions: { Labels: { 'dev.pier.volume': 'vol_1' }, DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/srv/pier/volumes/vol_1' } } },
    },
  ]);
  assert.equal('Mounts' in toDockerServiceSpec(swarmGroupSpec({ ...input, process: 'worker' })).TaskTemplate.ContainerSpec, false);
});

test('a group whose volume moved to another node differs in its pin and mounts (its service is re-pinned); a scale or an env change alone does not', () => {
  const on = (node: string, address: string, replicas = 1) =>
    toDockerServiceSpec(swarmGroupSpec({ ...input, process: 'worker', replicas, volumes: { nodeId: node, mounts: [{ name: `pier-vol_1-node-${address}`, device: '/srv/pier/volumes/vol_1', target: '/data', labels: { 'dev.pier.volume': 'vol_1' } }] } }));
  assert.equal(volumeHomeDiffers(on('n2', '10.0.0.2'), on('n1', '10.0.0.1')), true);
  assert.equal(volumeHomeDiffers(on('n2', '10.0.0.2', 0), on('n2', '10.0.0.2', 1)), false);
  const withEnv = on('n2', '10.0.0.2');
  withEnv.TaskTemplate.ContainerSpec.Env.push('EXTRA=1');
  assert.equal(volumeHomeDiffers(withEnv, on('n2', '10.0.0.2')), false);
  // A group without volumes never differs in them.
  const plain = toDockerServiceSpec(swarmGroupSpec({ ...input, process: 'worker' }));
  assert.equal(volumeHomeDiffers(plain, plain), false);
});
