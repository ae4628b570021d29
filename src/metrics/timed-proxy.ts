// One way to time every async method of an object without touching its code: the Store and the Matrix port are
// wrapped at the composition root, so neither imports Prometheus. Sync methods and properties pass through.
import { safeLabel } from "./labels.js";

/** Called when an async call starts (method name as a safe label); the returned function is told how it ended. */
export type CallObserver = (method: string) => (outcome: "ok" | "error") => void;

export function timeAsyncMethods<T extends object>(target: T, observe: CallObserver): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== "function" || typeof prop !== "string") return v;
      return (...args: unknown[]) => {
        const result = (v as (...a: unknown[]) => unknown).apply(obj, args);
        if (!(result instanceof Promise)) return result;
        const done = observe(safeLabel(prop));
        return result.then(
          (r) => {
            done("ok");
            return r;
          },
          (err: unknown) => {
            done("error");
            throw err;
          },
        );
      };
    },
  });
}
