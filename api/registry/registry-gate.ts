// Who may use the registry's images while garbage collection decides what to delete: a
// shared/exclusive lock in this process. Rollbacks and deploys that pin a registry image hold it
// shared from "the image is there" to "the release is written"; a collection holds it exclusive
// from reading the releases to the last delete, so no release can come to pin an image it is
// deleting. Waiters are served in order, so neither side starves.

export interface RegistryGate {
  shared<T>(fn: () => Promise<T>): Promise<T>;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** True while a collection holds it (builds say so rather than wait blind). */
  readonly collecting: boolean;
  /** Notes that this process pushed `host/repo@sha256:…` now (a build that may be deployed soon). */
  notePush(image: string): void;
  /** When this process last pushed that image (ms since the epoch), if it did. */
  lastPush(image: string): number | undefined;
}

export function createRegistryGate(): RegistryGate {
  let readers = 0;
  let writer = false;
  const queue: { exclusive: boolean; go: () => void }[] = [];
  const pushes = new Map<string, number>();

  function pump(): void {
    while (queue.length) {
      const next = queue[0]!;
      if (next.exclusive) {
        if (writer || readers > 0) return;
        writer = true;
      } else {
        if (writer) return;
        readers++;
      }
      queue.shift();
      next.go();
    }
  }

  async function run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((go) => {
      queue.push({ exclusive, go });
      pump();
    });
    try {
      return await fn();
    } finally {
      if (exclusive) writer = false;
      else readers--;
      pump();
    }
  }

  return {
    shared: (fn) => run(false, fn),
    exclusive: (fn) => run(true, fn),
    get collecting() {
      return writer;
    },
    notePush(image) {
      pushes.delete(image);
      pushes.set(image, Date.now());
      // Bounded: the oldest go first (the registry's own push times cover the local registry).
      if (pushes.size > 10_000) pushes.delete(pushes.keys().next().value as string);
    },
    lastPush: (image) => pushes.get(image),
  };
}
