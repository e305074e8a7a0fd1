// End to end: the real Ringmaster binary in demo mode, in a real window under Xvfb, driven through
// tauri-driver + WebKitWebDriver. Checks the rings board shows the demo tenant's rings, then the hosts view.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const logDir = path.join(dataDir, "logs");

/** What the app was doing when a wait ran out: its log's tail and, where gdb exists, every thread's stack. */
function diagnose(name) {
  const lines = [];
  if (existsSync(logDir)) {
    for (const f of readdirSync(logDir)) {
      lines.push(...readFileSync(path.join(logDir, f), "utf8").trimEnd().split("\n").slice(-40));
    }
  }
  try {
    const pid = execFileSync("pgrep", ["-n", "-f", path.resolve(app)], { encoding: "utf8" }).trim();
    const stacks = execFileSync("gdb", ["-batch", "-p", pid, "-ex", "thread apply all bt 12"], {
      encoding: "utf8",
      timeout: 60_000,
      stdio: ["ignore", "pipe", "ignore"],
    });
    writeFileSync(path.join(artifacts, `${name}-stacks.txt`), stacks);
  } catch (e) {
    lines.push(`(no thread stacks: ${e.message.split("\n")[0]})`);
  }
  writeFileSync(path.join(artifacts, `${name}-log.txt`), lines.join("\n"));
  return lines.slice(-15).join("\n");
}

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
    env: {
      ...process.env,
      RINGMASTER_DATA_DIR: dataDir,
      RINGMASTER_LOG_DIR: logDir,
      RINGMASTER_TENANT: "demo",
      RINGMASTER_DEMO_TIME_SCALE: "1200",
    },
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
  const refreshIdle = async () => /Refresh/.test(await browser.$('[data-testid="refresh-button"]').getText());
  const topBar = async () => browser.execute(() => document.querySelector("header.topbar")?.textContent ?? "");
  await browser.waitUntil(refreshIdle, { timeout: 180_000, interval: 500 }).catch(async () => {
    await browser.saveScreenshot(path.join(artifacts, "refresh-stuck.png"));
    const bar = await topBar();
    throw new Error(`the inventory refresh after the rollout never finished; top bar: ${bar}\n${diagnose("refresh-stuck")}`);
  });
  // The ring's one-click rollback: every pool the rollout changed goes back to its known-good release.
  await browser.$('[data-testid="nav-rings"]').click();
  const ringRollback = browser.$('[data-testid="ring-lane"][data-ring="Test"] [data-testid="ring-rollback"]');
  await ringRollback.waitForClickable({ timeout: 15_000 });
  await ringRollback.click();
  const pools = browser.$('[data-testid="ring-plan-pools"]');
  await pools.waitForExist({ timeout: 15_000 });
  await browser.waitUntil(async () => /hp-test-weu[\s\S]*2026\.1127\.1/.test(await pools.getText()), {
    timeout: 15_000,
    timeoutMsg: "the ring rollback did not take hp-test-weu back to 2026.1127.1",
  });
  await browser.saveScreenshot(path.join(artifacts, "ring-rollback.png"));
  const confirm = browser.$('[data-testid="confirm-ring"]');
  await browser.waitUntil(async () => await confirm.isEnabled(), { timeout: 15_000 });
  await confirm.click();
  await browser.waitUntil(
    async () => /Rollback/i.test(await browser.$('[data-testid="rollout-detail"]').getText()),
    { timeout: 15_000, timeoutMsg: "the rollback's detail never showed" },
  );
  await waitForRolloutState("completed", 120_000);
  await browser.saveScreenshot(path.join(artifacts, "rollback-completed.png"));
});

/** Set a text field's value the way typing does (Svelte listens for `input`). */
async function fill(selector, value) {
  const el = browser.$(selector);
  await el.waitForExist({ timeout: 15_000 });
  await browser.execute(
    (sel, text) => {
      const field = document.querySelector(sel);
      field.focus();
      field.value = text;
      field.dispatchEvent(new Event("input", { bubbles: true }));
      field.blur();
    },
    selector,
    value,
  );
}

/** Scroll the screen's own scroll area to an element (WebDriver's scrollIntoView also scrolls the window). */
async function reveal(selector) {
  await browser.execute((sel) => {
    const el = document.querySelector(sel);
    const scroller = document.querySelector("main.content");
    if (el && scroller) scroller.scrollTop += el.getBoundingClientRect().top - scroller.getBoundingClientRect().top - 16;
  }, selector);
}

async function attribute(selector, name) {
  const el = browser.$(selector);
  if (!(await el.isExisting())) return null;
  return el.getAttribute(name);
}

test("build: register the master, run a script, capture it, and open the new release's checklist", async () => {
  try {
    await buildToRelease();
  } catch (e) {
    // What the window showed when it went wrong.
    await browser.saveScreenshot(path.join(artifacts, "build-failure.png")).catch(() => {});
    throw e;
  }
});

async function buildToRelease() {
  await browser.$('[data-testid="nav-build"]').click();
  await browser.$('[data-testid="build-view"]').waitForExist({ timeout: 15_000 });

  // 1. Register the demo's golden master with the proposed image definition and capture subnet.
  const card = '[data-testid="master-card"][data-vm="vm-golden-w11"]';
  await browser.$(card).waitForExist({ timeout: 60_000, timeoutMsg: "the golden master never showed" });
  if ((await attribute(card, "data-registered")) !== "true") {
    await browser.$(`${card} [data-testid="register-button"]`).click();
    const definition = await browser.$(`${card} [data-testid="register-definition"]`);
    await definition.waitForExist({ timeout: 15_000 });
    assert.match(await definition.getValue(), /\/galleries\/.+\/images\/.+/, "an image definition is proposed");
    assert.match(await browser.$(`${card} [data-testid="register-subnet"]`).getValue(), /\/subnets\/.+/, "a capture subnet is proposed");
    await browser.$(`${card} [data-testid="register-submit"]`).click();
    await browser.waitUntil(async () => (await attribute(card, "data-registered")) === "true", {
      timeout: 30_000,
      timeoutMsg: "the master was never registered",
    });
  }
  await browser.saveScreenshot(path.join(artifacts, "build-registered.png"));

  // 2. A collection with one script.
  await browser.$('[data-testid="new-collection"]').click();
  await fill('[data-testid="collection-name"]', "E2E hello");
  await fill('[data-testid="script-name"]', "Say hello");
  await fill('[data-testid="script-content"]', "Write-Output 'hello'");
  await browser.$('[data-testid="save-collection"]').click();
  await browser.waitUntil(
    () =>
      browser.execute(() =>
        [...document.querySelectorAll('[data-testid="collection-item"]')].some((el) => el.textContent.includes("E2E hello")),
      ),
    { timeout: 15_000, timeoutMsg: "the saved collection never appeared in the list" },
  );

  // 3. Run it on the master and wait for it to succeed, with its output on screen.
  const run = browser.$('[data-testid="run-collection"]');
  await browser.waitUntil(async () => await run.isEnabled(), { timeout: 15_000, timeoutMsg: "Run stayed disabled" });
  await run.click();
  await browser.waitUntil(
    async () =>
      (await attribute('[data-testid="run-panel"]', "data-state")) === "succeeded" &&
      /E2E hello/.test(await browser.execute(() => document.querySelector('[data-testid="run-panel"] h3')?.textContent ?? "")),
    { timeout: 120_000, interval: 500, timeoutMsg: "the script run never succeeded" },
  );
  const output = await browser.execute(
    () => document.querySelector('[data-testid="run-panel"] [data-testid="step-stdout"]')?.textContent ?? "",
  );
  assert.match(output, /hello/);
  assert.equal(await attribute('[data-testid="run-step"]', "data-state"), "succeeded");
  await reveal('[data-testid="run-panel"]');
  await browser.saveScreenshot(path.join(artifacts, "build-run-succeeded.png"));

  // 4. Plan the capture, review it, start it and wait for it to succeed.
  await reveal('[data-testid="build-view"]');
  await browser.$(`${card} [data-testid="capture-button"]`).click();
  const plan = browser.$('[data-testid="capture-plan"]');
  await plan.waitForExist({ timeout: 30_000, timeoutMsg: "the capture plan never showed" });
  const version = (await browser.execute(() => document.querySelector('[data-testid="capture-version"]')?.textContent ?? "")).trim();
  assert.match(version, /^\d{4}\.\d{4}\.\d+$/);
  assert.ok((await browser.$$('[data-testid="capture-region"]')).length >= 1, "the plan lists target regions");
  await browser.saveScreenshot(path.join(artifacts, "capture-plan.png"));
  await browser.$('[data-testid="start-capture"]').click();
  await browser.waitUntil(
    async () => (await attribute('[data-testid="capture-panel"]', "data-state")) === "succeeded",
    { timeout: 240_000, interval: 500, timeoutMsg: "the capture never succeeded" },
  );
  const stages = await browser.$$('[data-testid="capture-stage"]');
  assert.equal(stages.length, 10);
  for (const stage of stages) assert.equal(await stage.getAttribute("data-status"), "done");
  for (const r of await browser.$$('[data-testid="capture-resource"]')) {
    const kind = await r.getAttribute("data-kind");
    assert.equal(await r.getAttribute("data-state"), kind === "imageVersion" ? "kept" : "deleted", `${kind} is gone`);
  }
  await reveal('[data-testid="capture-panel"]');
  await browser.saveScreenshot(path.join(artifacts, "capture-succeeded.png"));

  // 5. The new release's page, with its checklist (once the refresh the capture started brings the version in).
  await browser.$('[data-testid="open-release"]').click();
  const detail = `[data-testid="release-detail"][data-version="${version}"]`;
  await browser.$(detail).waitForExist({ timeout: 60_000, timeoutMsg: `the release page of ${version} never showed` });
  await browser.waitUntil(async () => (await browser.$$('[data-testid="checklist-item"]')).length === 7, {
    timeout: 15_000,
    timeoutMsg: "the checklist does not have 7 items",
  });
  const states = [];
  for (const el of await browser.$$('[data-testid="checklist-item"]')) states.push(await el.getAttribute("data-state"));
  // No gate has judged it yet and nobody has signed off in Pilot.
  assert.equal(states[4], "missingEvidence");
  assert.equal(states[5], "missingEvidence");
  // The collection ran and succeeded before the capture: item 1 is met.
  assert.equal(states[0], "met");
  assert.equal(await attribute(detail, "data-stage"), "captured");
  await browser.saveScreenshot(path.join(artifacts, "release-checklist.png"));

  // 6. Run the Test ring's gates on it: no Test host runs it yet, so the health gate fails (with the reason),
  // while the Login Enterprise smoke test passes; item 5 is then "not met".
  await browser.$('[data-testid="run-gates"]').click();
  await browser.waitUntil(
    async () => {
      const runs = await browser.$$('[data-testid="gate-run"]');
      if (runs.length !== 2) return false;
      for (const r of runs) if ((await r.getAttribute("data-verdict")) === "running") return false;
      return true;
    },
    { timeout: 90_000, interval: 500, timeoutMsg: "the gates never finished" },
  );
  const verdicts = {};
  for (const r of await browser.$$('[data-testid="gate-run"]')) verdicts[await r.getAttribute("data-gate")] = await r.getAttribute("data-verdict");
  assert.deepEqual(verdicts, { health: "fail", loginEnterprise: "pass" });
  await browser.waitUntil(
    async () => (await (await browser.$$('[data-testid="checklist-item"]'))[4].getAttribute("data-state")) === "notMet",
    { timeout: 15_000, timeoutMsg: "checklist item 5 did not follow the gates" },
  );
  await reveal('[data-testid="release-gates"]');
  await browser.saveScreenshot(path.join(artifacts, "release-gates.png"));
}

async function openRelease(version) {
  await browser.$('[data-testid="nav-releases"]').click();
  const open = browser.$(`[data-testid="release-row"][data-version="${version}"] [data-testid="open-release-row"]`);
  await open.waitForClickable({ timeout: 30_000 });
  await open.click();
  await browser.$(`[data-testid="release-detail"][data-version="${version}"]`).waitForExist({ timeout: 15_000 });
  await browser.$('[data-testid="promotion-ring"][data-ring="test"]').waitForExist({ timeout: 15_000 });
}

const testRing = '[data-testid="promotion-ring"][data-ring="test"]';

test("sign-off binds the evidence, and a failing gate rolls the Test ring back on its own", async () => {
  // 1. Approve the Test release for Pilot as the signed-in person (the demo's test user).
  await openRelease("2026.1127.1");
  await browser.$(`${testRing} [data-testid="ring-sign-off"]`).click();
  const dialog = browser.$('[data-testid="signoff-dialog"]');
  await dialog.waitForExist({ timeout: 15_000 });
  await browser.$('[data-testid="signoff-sha"]').waitForExist({ timeout: 15_000 });
  const sha = await browser.$('[data-testid="signoff-sha"]').getText();
  assert.match(sha, /^[0-9a-f]{64}$/);
  await fill('[data-testid="signoff-comment"]', "Apps and profile load fine on the Test hosts");
  await browser.saveScreenshot(path.join(artifacts, "signoff-dialog.png"));
  await browser.$('[data-testid="signoff-approve"]').click();
  const approval = browser.$(`${testRing} [data-testid="approval"]`);
  await approval.waitForExist({ timeout: 30_000, timeoutMsg: "the approval never showed" });
  assert.equal(await approval.getAttribute("data-current"), "true");
  assert.match(await approval.getText(), /Alex Wilber/);
  assert.match(await approval.getText(), new RegExp(sha.slice(0, 12)));

  // 2. The Test ring's policy: the Login Enterprise test whose Teams fails, and automatic rollback.
  await browser.$('[data-testid="nav-settings"]').click();
  const policy = '[data-testid="ring-policy"][data-ring="test"]';
  await browser.$(`${policy} [data-testid="policy-le-test"]`).waitForExist({ timeout: 15_000 });
  const health = browser.$(`${policy} [data-testid="policy-health"]`);
  if (await health.isSelected()) await health.click();
  await fill(`${policy} [data-testid="policy-le-test"]`, "AVD smoke - Teams fails");
  const auto = browser.$(`${policy} [data-testid="policy-auto-rollback"]`);
  if (!(await auto.isSelected())) await auto.click();
  await browser.$(`${policy} [data-testid="policy-save"]`).click();
  await browser.$(`${policy} [role="status"]`).waitForExist({ timeout: 15_000, timeoutMsg: "the policy was not saved" });
  await reveal(policy);
  await browser.saveScreenshot(path.join(artifacts, "ring-policy.png"));

  // 3. Run the Test gates: Teams fails, the ring rolls back without anyone clicking, and the app says so.
  await openRelease("2026.1127.1");
  await browser.$(`${testRing} [data-testid="ring-run-gates"]`).click();
  const notice = browser.$('[data-testid="notice"]');
  await notice.waitForExist({ timeout: 120_000, timeoutMsg: "no notice of an automatic rollback" });
  assert.equal(await notice.getAttribute("data-level"), "danger");
  const text = await notice.getText();
  assert.match(text, /rolled back automatically/);
  assert.match(text, /Login Enterprise gate failed on 2026\.1127\.1/);
  assert.match(text, /hp-test-weu/);
  // The new gate run changed the evidence: the approval no longer counts, and promotion stays closed.
  await browser.waitUntil(async () => (await browser.$(`${testRing} [data-testid="approval"]`).getAttribute("data-current")) === "false", {
    timeout: 15_000,
    timeoutMsg: "the approval stayed current after new evidence",
  });
  assert.equal(await browser.$(`${testRing}`).getAttribute("data-ready"), "false");
  assert.match(await browser.$(`${testRing} [data-testid="promotion-missing"]`).getText(), /no longer counts/);
  await reveal('[data-testid="promotion-panel"]');
  await browser.saveScreenshot(path.join(artifacts, "auto-rollback.png"));

  // 4. The rollback runs to completion.
  await browser.$('[data-testid="nav-rollouts"]').click();
  await browser.waitUntil(
    async () => /Rollback/i.test(await browser.$('[data-testid="rollout-detail"]').getText().catch(() => "")),
    { timeout: 30_000, timeoutMsg: "the automatic rollback is not on the Rollouts screen" },
  );
  await waitForRolloutState("completed", 120_000);
});

test("audit: the log verifies intact and records the rollouts and the capture above", async () => {
  await browser.$('[data-testid="nav-audit"]').click();
  await browser.$('[data-testid="audit-view"]').waitForExist({ timeout: 15_000 });
  await browser.waitUntil(async () => (await browser.$$('[data-testid="audit-entry"]')).length > 0, {
    timeout: 15_000,
    timeoutMsg: "the audit log showed no entries",
  });
  await browser.$('[data-testid="verify-chain"]').click();
  const banner = browser.$('[data-testid="chain-banner"]');
  await banner.waitForExist({ timeout: 15_000, timeoutMsg: "no verification banner" });
  assert.equal(await banner.getAttribute("data-intact"), "true");
  assert.match(await banner.getText(), /Chain intact: \d+ entries verified at/);
  const actions = await browser.execute(() =>
    [...document.querySelectorAll('[data-testid="audit-entry"]')].map((row) => row.getAttribute("data-action")),
  );
  for (const action of [
    "rollout.start",
    "rollout.rollback",
    "capture.start",
    "capture.finish",
    "signoff.approve",
    "gate.autoRollback",
    "rollout.rollback.automatic",
  ]) {
    assert.ok(actions.includes(action), `the log has a ${action} entry (has ${actions.join(", ")})`);
  }
  await browser.saveScreenshot(path.join(artifacts, "audit-verified.png"));
});
