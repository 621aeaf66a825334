// A Runtime for tests that must not touch a container engine: every method throws, so a test
// that reaches Docker by mistake fails loudly instead of starting containers. A Proxy, so it
// covers methods added to the Runtime interface later.
import type { Runtime } from '../../api/runtime/runtime.js';

export function throwingRuntime(): Runtime & { calls: string[] } {
  const calls: string[] = [];
  return new Proxy({} as Runtime & { calls: string[] }, {
    get(_target, key) {
      if (key === 'calls') return calls;
      // Not a thenable, not anything else the language probes for.
      if (typeof key !== 'string' || key === 'then') return undefined;
      return () => {
        calls.push(key);
        throw new Error(`runtime.${key}() was called, and this test provides no container engine`);
      };
    },
  });
}
