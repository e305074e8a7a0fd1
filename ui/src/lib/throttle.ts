export type Throttled = {
  /** Ask for a run: now if the last one started long enough ago, else once at the end of the interval. */
  trigger(): void;
  /** Drop a scheduled run (one in progress finishes). */
  cancel(): void;
};

const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

/**
 * Run an async task at most once per `intervalMs`, never two at a time, and never miss the last
 * request: a burst of triggers gives one run at once and one more at the end of the burst.
 */
export function throttle(task: () => Promise<void>, intervalMs: number): Throttled {
  let lastStart = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running = false;
  let again = false;

  async function run() {
    timer = null;
    running = true;
    lastStart = now();
    try {
      await task();
    } finally {
      running = false;
      if (again) {
        again = false;
        trigger();
      }
    }
  }

  function trigger() {
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) return;
    const wait = lastStart + intervalMs - now();
    if (wait <= 0) {
      void run();
    } else {
      timer = setTimeout(() => void run(), wait);
    }
  }

  return {
    trigger,
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      again = false;
    },
  };
}
