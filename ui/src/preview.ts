/**
 * Browser preview with a mocked backend (demo tenant), for screenshots and UI work without Tauri.
 * Served by `npm run dev` at /preview.html; never part of `vite build` (only index.html is).
 *
 * Query parameters: view=rings|images|hosts|settings, refresh (start a background refresh),
 * error (last refresh failed), empty (first run: no cached inventory), pool=<name> (hosts of a pool).
 */
import { invoke } from "@tauri-apps/api/core";
import { mockIPC } from "@tauri-apps/api/mocks";
import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";
import { demoBackend, makeDemoTenant } from "./fixtures/demo";
import { VIEWS, type View } from "./lib/stores/router.svelte";

const params = new URLSearchParams(location.search);
const requested = params.get("view") as View | null;
const initialView: View = requested && VIEWS.includes(requested) ? requested : "rings";

const tenant = makeDemoTenant({ empty: params.has("empty") });
const failure = {
  code: "arm_throttled",
  message: "Azure Resource Graph throttled the inventory query (HTTP 429). Showing the inventory from the last successful refresh.",
  requestId: "3f0c2a51-7d8e-4b9a-a6c2-91e4d5b8f7a0",
};
if (params.has("error")) tenant.board.sync = { ...tenant.board.sync, lastError: failure };

const backend = demoBackend(tenant, { refreshMs: Number(params.get("refreshMs") ?? 6000) });
mockIPC((cmd, args) => backend(cmd, args), { shouldMockEvents: true });

// Like the real backend, which starts a refresh by itself at startup.
if (params.has("refresh") || params.has("empty")) {
  void invoke("refresh_inventory").catch(() => undefined);
}

const target = document.getElementById("app");
if (!target) throw new Error("#app missing");
const pool = params.get("pool");
mount(App, { target, props: { initialView, initialPool: pool ? ([...tenant.poolNames].find(([, name]) => name === pool)?.[0] ?? null) : null } });

// ?focus=<data-testid>: focus an element once rendered, to check focus rings in screenshots.
const focusId = params.get("focus");
if (focusId) {
  setTimeout(() => document.querySelector<HTMLElement>(`[data-testid="${focusId}"]`)?.focus(), 800);
}
