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
    env: { ...process.env, RINGMASTER_DATA_DIR: dataDir, RINGMASTER_TENANT: "demo" },
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
