import { describe, expect, it } from "vitest";
import { sleep } from "../test/util";
import { throttle } from "./throttle";

describe("throttle", () => {
  it("runs at once, then once more at the end of a burst, never two at a time", async () => {
    let runs = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const task = throttle(async () => {
      runs += 1;
      concurrent += 1;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await sleep(30);
      concurrent -= 1;
    }, 100);

    for (let i = 0; i < 20; i++) task.trigger();
    await sleep(10);
    expect(runs).toBe(1);
    await sleep(200);
    expect(runs).toBe(2);
    expect(maxConcurrent).toBe(1);
  });

  it("keeps to one run per interval under a steady stream of triggers", async () => {
    let runs = 0;
    const task = throttle(async () => {
      runs += 1;
    }, 100);
    const started = performance.now();
    while (performance.now() - started < 450) {
      task.trigger();
      await sleep(2);
    }
    const elapsed = performance.now() - started;
    await sleep(150);
    // One at once, then at most one per 100 ms, plus the trailing one.
    expect(runs).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
    expect(runs).toBeGreaterThanOrEqual(4);
  });

  it("drops a scheduled run when cancelled", async () => {
    let runs = 0;
    const task = throttle(async () => {
      runs += 1;
    }, 50);
    task.trigger();
    await sleep(0);
    task.trigger();
    task.cancel();
    await sleep(100);
    expect(runs).toBe(1);
  });
});
