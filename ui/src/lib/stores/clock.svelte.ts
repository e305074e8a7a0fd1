/** A shared "now" for relative times ("synced 2 min ago"), ticking every 30 s while anything uses it. */
export const clock = $state({ now: Date.now() });

export const CLOCK_INTERVAL_MS = 30_000;

let timer: ReturnType<typeof setInterval> | null = null;
let users = 0;

/** Start ticking; returns a function that stops this user's subscription. */
export function startClock(intervalMs: number = CLOCK_INTERVAL_MS): () => void {
  users += 1;
  clock.now = Date.now();
  if (timer === null) {
    timer = setInterval(() => {
      clock.now = Date.now();
    }, intervalMs);
  }
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    users -= 1;
    if (users === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
}
