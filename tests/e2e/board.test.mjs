// End to end: the real Ringmaster binary in demo mode, in a real window under Xvfb, driven through
// tauri-driver + WebKitWebDriver. Checks the rings board shows the demo tenant's rings, then the hosts view.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { remote } from "webdriverio";

const here = path.dirname(fileURLToPath(import.meta.url));
const app = process.env.RINGMASTER_APP;
assert.ok(app, "RINGMASTER_APP must point at the built ringmaster binary");
const artifacts = path.join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });
const dataDir = mkdtempSync(path.join(tmpdir(), "ringmaster-e2e-"));

let driver;
let browser;

async function waitForDriver(port) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/status`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("tauri-driver did not start");
}

before(async () => {
  const port = 4444;
  driver = spawn(process.env.TAURI_DRIVER ?? "tauri-driver", ["--port", String(port)], {
    env: { ...process.env, RINGMASTER_DATA_DIR: dataDir, RINGMASTER_TENANT: "demo", RINGMASTER_DEMO_TIME_SCALE: "1200" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitForDriver(port);
  browser = await remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "error",
    capabilities: { "tauri:options": { application: path.resolve(app) } },
  });
});

after(async () => {
  await browser?.deleteSession().catch(() => {});
  driver?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

test("the rings board shows the demo tenant's rings in order with their pools", async () => {
  await browser.waitUntil(async () => (await browser.$$('[data-testid="ring-lane"]')).length === 3, {
    timeout: 60_000,
    timeoutMsg: "the board never showed three ring lanes",
  });
  const lanes = await browser.$$('[data-testid="ring-lane"]');
  const names = [];
  for (const lane of lanes) names.push(await lane.getAttribute("data-ring"));
  assert.deepEqual(names, ["Test", "Pilot", "Prod"]);
  // 1 + 2 + 4 pools in rings, plus the unassigned one.
  await browser.waitUntil(async () => (await browser.$$('[data-testid="pool-card"]')).length === 8, {
    timeout: 30_000,
    timeoutMsg: "expected 8 pool cards",
  });
  const status = await browser.$('[data-testid="sync-status"]').getText();
  assert.match(status, /synced/i);
  // textContent, not WebDriver's visible-text heuristic, which skips ellipsis-clipped spans.
  const prod = await browser.execute(
    () => document.querySelectorAll('[data-testid="ring-lane"]')[2]?.textContent ?? "",
  );
  for (const pool of ["hp-prod-weu-1", "hp-prod-weu-2", "hp-prod-neu-1", "hp-prod-neu-2"]) {
    assert.ok(prod.includes(pool), `Prod lane lists ${pool}`);
  }
  assert.match(prod, /2026\.1105\.1/);
  assert.match(prod, /Contoso AVD Production/);
  await browser.saveScreenshot(path.join(artifacts, "rings-board.png"));
});

test("the hosts view lists every session host from SQLite", async () => {
  await browser.$('[data-testid="nav-hosts"]').click();
  const count = browser.$('[data-testid="hosts-count"]');
  await count.waitForExist({ timeout: 15_000 });
  await browser.waitUntil(async () => /226/.test(await count.getText()), {
    timeout: 15_000,
    timeoutMsg: "the hosts view never showed 226 hosts",
  });
  await browser.saveScreenshot(path.join(artifacts, "hosts.png"));
});

async function openPoolMenu(pool) {
  await browser.$('[data-testid="nav-rings"]').click();
  const menu = browser.$(`[data-testid="pool-menu"][aria-label="Actions for ${pool}"]`);
  await menu.waitForClickable({ timeout: 15_000 });
  await menu.click();
}

async function waitForRolloutState(state, timeout) {
  await browser.waitUntil(
    async () => (await browser.$('[data-testid="rollout-detail"]').getAttribute("data-state")) === state,
    { timeout, interval: 500, timeoutMsg: `the rollout never reached ${state}` },
  );
}

test("a rollout and a one-click rollback run to completion in the real window", async () => {
  // Roll the Test pool out to an older, fully replicated release.
  await openPoolMenu("hp-test-weu");
  await browser.$('[data-testid="pool-rollout"]').click();
  const choice = browser.$('[data-testid="version-picker"] input[value="2026.1120.2"]');
  await choice.waitForExist({ timeout: 15_000 });
  await choice.click();
  const start = browser.$('[data-testid="start-rollout"]');
  await browser.waitUntil(async () => await start.isEnabled(), { timeout: 15_000, timeoutMsg: "Start stayed disabled" });
  await start.click();
  await browser.$('[data-testid="rollouts-view"]').waitForExist({ timeout: 15_000 });
  await waitForRolloutState("completed", 120_000);
  const tiles = await browser.$$('[data-testid="rollout-host"]');
  assert.equal(tiles.length, 4);
  for (const tile of tiles) assert.equal(await tile.getAttribute("data-stage"), "done");
  await browser.saveScreenshot(path.join(artifacts, "rollout-completed.png"));

  // One click back to the release the pool ran before (once the refresh the finished rollout started is done).
  await browser.waitUntil(async () => /Refresh/.test(await browser.$('[data-testid="refresh-button"]').getText()), {
    timeout: 30_000,
    timeoutMsg: "the inventory refresh after the rollout never finished",
  });
  await openPoolMenu("hp-test-weu");
  await browser.$('[data-testid="pool-rollback"]').click();
  const summary = browser.$('[data-testid="rollback-summary"]');
  await summary.waitForExist({ timeout: 15_000 });
  await browser.waitUntil(async () => /2026\.1127\.1/.test(await summary.getText()), {
    timeout: 15_000,
    timeoutMsg: "the rollback did not name 2026.1127.1",
  });
  const confirm = browser.$('[data-testid="confirm-rollback"]');
  await browser.waitUntil(async () => await confirm.isEnabled(), { timeout: 15_000 });
  await confirm.click();
  await browser.waitUntil(
    async () => /Rollback/i.test(await browser.$('[data-testid="rollout-detail"]').getText()),
    { timeout: 15_000, timeoutMsg: "the rollback's detail never showed" },
  );
  await waitForRolloutState("completed", 120_000);
  await browser.saveScreenshot(path.join(artifacts, "rollback-completed.png"));
});
