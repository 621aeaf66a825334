// UDP from and to a container of the busybox test image, which has no UDP client or server (its
// nc has no -u): a Node process of this host run inside the container's network namespace
// (nsenter -n), so its datagrams leave from and arrive at the container's own addresses, over
// its networks, through the host's firewall, exactly as the container's own would. Needs root.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

async function pidOf(containerId: string): Promise<string> {
  const { stdout } = await exec('docker', ['inspect', '--format', '{{.State.Pid}}', containerId]);
  return stdout.trim();
}

// Answers every datagram on each port with "pong PORT", on IPv6 and IPv4 (one dual-stack socket).
const ECHO = `
const dgram = require('node:dgram');
let up = 0;
for (const port of JSON.parse(process.argv[1])) {
  const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (m, r) => s.send('pong ' + port, r.port, r.address));
  s.bind(port, '::', () => { if (++up === JSON.parse(process.argv[1]).length) console.log('ready'); });
}
setTimeout(() => process.exit(0), 300000);
`;

// Sends "ping" to each target from a connected socket: a reply, ICMP port unreachable
// (ECONNREFUSED on a connected socket) or nothing within 3 s.
const ASK = `
const dgram = require('node:dgram');
const ask = ({ address, port }) => new Promise((done) => {
  const s = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const end = (what) => { clearTimeout(timer); s.close(); done(what); };
  const timer = setTimeout(() => end('timeout'), 3000);
  s.on('message', (m) => end(m.toString()));
  s.on('error', (e) => end(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  s.connect(port, address, () => s.send('ping'));
});
(async () => {
  const out = [];
  for (const t of JSON.parse(process.argv[1])) out.push(await ask(t));
  console.log(JSON.stringify(out));
})();
`;

/** A UDP echo on `ports` inside the container's network namespace, until close(). */
export async function startUdpEcho(containerId: string, ports: number[]): Promise<{ close(): void }> {
  const child: ChildProcess = spawn('nsenter', ['-t', await pidOf(containerId), '-n', '--', process.execPath, '-e', ECHO, JSON.stringify(ports)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`udp echo did not start in 20 s: ${err}`)), 20_000);
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`udp echo exited with ${code}: ${err}`));
    });
  });
  return { close: () => void child.kill() };
}

/** What each target answers a "ping" sent from inside the container: "pong PORT", "refused" or "timeout". */
export async function udpAsk(containerId: string, targets: { address: string; port: number }[]): Promise<string[]> {
  const { stdout } = await exec('nsenter', ['-t', await pidOf(containerId), '-n', '--', process.execPath, '-e', ASK, JSON.stringify(targets)], { timeout: 60_000 });
  return JSON.parse(stdout.trim()) as string[];
}
