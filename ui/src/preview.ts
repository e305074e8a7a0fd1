/**
 * Browser preview with a mocked backend (demo tenant), for screenshots and UI work without Tauri.
 * Served by `npm run dev` at /preview.html; never part of `vite build` (only index.html is).
 *
 * Query parameters: signin (the sign-in screen of the interactive mode), view=build|releases|rings|hosts|rollouts|audit|settings (images = releases), refresh (start a background refresh),
 * error (last refresh failed), empty (first run: no cached inventory), pool=<name> (hosts of a pool),
 * rollout=<id> (that rollout on the Rollouts screen), live (move the running rollouts along),
 * menu=<pool name> (open that pool card's menu),
 * start=<pool name> / rollback=<pool name> / profile=<pool name> (open that dialog from the pool's menu on the board),
 * with start: version=<name> (pick that version) and message=<text> (type that message).
 * Build and Releases: build=capture|idle (a capture half-way, or nothing under way, instead of a run streaming output), release=<version>
 * (that release's page), open=capture|register|delete-collection|retention|new-collection|script (open that dialog, form or script),
 * collection=<name> (pick that collection in the editor), runId=<id> / captureId=<id> (show that run or capture).
 * Audit: verify=intact|broken (press Verify chain; broken: an entry was altered in the database file),
 * expand=<seq> (open that entry's detail), filter=<text> (type that in the filter box).
 */
import { invoke } from "@tauri-apps/api/core";
import { mockIPC } from "@tauri-apps/api/mocks";
import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";
import { demoBackend, makeDemoTenant } from "./fixtures/demo";
import { VIEWS, type View } from "./lib/stores/router.svelte";

const params = new URLSearchParams(location.search);
const requestedRaw = params.get("view");
const requested = (requestedRaw === "images" ? "releases" : requestedRaw) as View | null;
const initialView: View = requested && VIEWS.includes(requested) ? requested : "rings";

const tenant = makeDemoTenant({ empty: params.has("empty") });
const failure = {
  code: "arm_throttled",
  message: "Azure Resource Graph throttled the inventory query (HTTP 429). Showing the inventory from the last successful refresh.",
  requestId: "3f0c2a51-7d8e-4b9a-a6c2-91e4d5b8f7a0",
};
if (params.has("error")) tenant.board.sync = { ...tenant.board.sync, lastError: failure };

const backend = demoBackend(tenant, {
  refreshMs: Number(params.get("refreshMs") ?? 6000),
  live: params.has("live"),
  tickMs: Number(params.get("tickMs") ?? 2500),
  buildScenario: params.get("build") === "capture" ? "capture" : params.get("build") === "idle" ? "idle" : "run",
  auditBroken: params.get("verify") === "broken",
});
// signin: interactive mode with nobody signed in yet (the sign-in screen).
const signedOut = { signedIn: false, name: null, username: null, tenantId: null, cloud: "AzureCloud", endedReason: null, secretStoreProblem: null };
mockIPC((cmd, args) => (params.has("signin") && cmd === "get_session" ? signedOut : backend(cmd, args)), { shouldMockEvents: true });

// Like the real backend, which starts a refresh by itself at startup.
if (params.has("refresh") || params.has("empty")) {
  void invoke("refresh_inventory").catch(() => undefined);
}

const target = document.getElementById("app");
if (!target) throw new Error("#app missing");
const pool = params.get("pool");
mount(App, {
  target,
  props: {
    initialView,
    initialPool: pool ? ([...tenant.poolNames].find(([, name]) => name === pool)?.[0] ?? null) : null,
    initialRollout: params.get("rollout"),
    initialRelease: params.get("release"),
  },
});

// Build and Releases: open a dialog or form, or pick a collection / run / capture, as a user would.
const click = (selector: string) => document.querySelector<HTMLElement>(selector)?.click();
setTimeout(() => {
  const collection = params.get("collection");
  if (collection) {
    [...document.querySelectorAll<HTMLElement>('[data-testid="collection-item"]')].find((b) => b.textContent?.includes(collection))?.click();
  }
  const runId = params.get("runId");
  if (runId) click(`[data-testid="run-row"][data-run-id="${runId}"] button`);
  const captureId = params.get("captureId");
  if (captureId) {
    [...document.querySelectorAll<HTMLElement>('[data-testid="capture-history"] button')].find((b) => b.textContent?.includes(captureId))?.click();
  }
  switch (params.get("open")) {
    case "capture":
      click('[data-testid="capture-button"]');
      break;
    case "register":
      click('[data-testid="register-button"]');
      break;
    case "delete-collection":
      click('[data-testid="delete-collection"]');
      break;
    case "retention":
      click('[data-testid="retention-delete-button"]');
      break;
    case "new-collection":
      click('[data-testid="new-collection"]');
      // Save it empty: every problem shows next to its field.
      setTimeout(() => click('[data-testid="save-collection"]'), 300);
      break;
    case "script":
      click('[data-testid="script-toggle"]');
      break;
  }
}, 900);

// Audit: verify the chain, open an entry, filter, as a user would.
setTimeout(() => {
  const filter = params.get("filter");
  const box = document.querySelector<HTMLInputElement>('[data-testid="audit-filter"]');
  if (filter !== null && box) {
    box.value = filter;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }
  const expand = params.get("expand");
  if (expand) click(`[data-testid="audit-entry"][data-seq="${expand}"]`);
  if (params.has("verify")) click('[data-testid="verify-chain"]');
}, 900);

// ?start=<pool> or ?rollback=<pool>: open that dialog through the pool card's menu, as a user would.
const dialogPool = params.get("start") ?? params.get("rollback") ?? params.get("profile") ?? params.get("menu");
if (dialogPool) {
  const item = params.has("start")
    ? "pool-rollout"
    : params.has("rollback")
      ? "pool-rollback"
      : params.has("profile")
        ? "pool-profile"
        : "none";
  setTimeout(() => {
    const card = [...document.querySelectorAll<HTMLElement>('[data-testid="pool-card"]')].find(
      (c) => c.querySelector(".name")?.textContent === dialogPool,
    );
    card?.parentElement?.querySelector<HTMLButtonElement>('[data-testid="pool-menu"]')?.click();
    setTimeout(() => document.querySelector<HTMLButtonElement>(`[data-testid="${item}"]`)?.click(), 50);
    setTimeout(() => {
      const version = params.get("version");
      if (version) document.querySelector<HTMLInputElement>(`[data-testid="version-picker"] input[value="${version}"]`)?.click();
      const message = params.get("message");
      const box = document.querySelector<HTMLTextAreaElement>('[data-testid="message"]');
      if (message !== null && box) {
        box.value = message;
        box.dispatchEvent(new Event("input", { bubbles: true }));
      }
    }, 400);
  }, 600);
}

// ?ringrollout=<ring name> or ?ringrollback=<ring name>: press that lane's button.
const ringLane = params.get("ringrollout") ?? params.get("ringrollback");
if (ringLane) {
  setTimeout(() => {
    const lane = document.querySelector<HTMLElement>(`[data-testid="ring-lane"][data-ring="${ringLane}"]`);
    lane?.querySelector<HTMLButtonElement>(params.has("ringrollout") ? '[data-testid="ring-rollout"]' : '[data-testid="ring-rollback"]')?.click();
  }, 600);
}

// ?focus=<data-testid>: focus an element once rendered, to check focus rings in screenshots.
const focusId = params.get("focus");
if (focusId) {
  setTimeout(() => document.querySelector<HTMLElement>(`[data-testid="${focusId}"]`)?.focus(), 800);
}
