import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { flushSync } from "svelte";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { collection, master } from "../../test/build-fixtures";
import { byTestId, render, text, waitFor } from "../../test/util";
import type { ScriptCollection } from "../bindings";
import { emptyCollection } from "../build";
import { Build } from "../stores/build.svelte";
import CollectionEditor from "./CollectionEditor.svelte";

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];

beforeEach(() => {
  calls = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "save_collection": {
        const c = (args as { collection: ScriptCollection }).collection;
        return { ...c, id: c.id || "col-new", updatedAt: "2026-11-27T10:00:00Z" };
      }
      case "start_script_run":
        return { id: "run-9", steps: [] };
      default:
        return Promise.reject(`command ${cmd} not found`);
    }
  });
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function open(c: ScriptCollection = collection()) {
  const build = new Build();
  const onrun = vi.fn((collectionId: string, vmId: string) => build.startRun(collectionId, vmId));
  const view = render(CollectionEditor, {
    collection: c,
    masters: [master()],
    onsave: (x: ScriptCollection) => build.saveCollection(x),
    ondelete: vi.fn(),
    onexport: vi.fn(),
    onrun,
  });
  cleanup.push(view.destroy);
  const saves = () => calls.filter((x) => x.cmd === "save_collection").map((x) => (x.args as { collection: ScriptCollection }).collection);
  const names = () => byTestId(view.target, "script-card").map((card) => text(card.querySelector(".script-title")));
  return { ...view, build, saves, names, onrun };
}

function type(el: HTMLElement, value: string) {
  (el as HTMLInputElement).value = value;
  el.dispatchEvent(new Event("input", { bubbles: true }));
  el.dispatchEvent(new Event("blur"));
  flushSync();
}

const button = (root: HTMLElement, id: string) => byTestId(root, id)[0] as HTMLButtonElement;

describe("Collection editor", () => {
  it("shows each problem next to its field after a save attempt, and saves nothing while any remains", async () => {
    const { target, saves } = open(emptyCollection());
    // Nothing is flagged before the user tries.
    expect(byTestId(target, "field-error")).toHaveLength(0);

    button(target, "save-collection").click();
    await waitFor(() => expect(byTestId(target, "field-error").map((e) => e.dataset.field)).toHaveLength(2));
    const errors = byTestId(target, "field-error");
    expect(text(errors[0])).toBe("Give the collection a name.");
    expect(text(errors[1])).toBe("The script is empty.");
    expect(byTestId(target, "collection-name")[0].getAttribute("aria-invalid")).toBe("true");
    expect(byTestId(target, "script-content")[0].getAttribute("aria-invalid")).toBe("true");
    // The first problem has focus, and the footer says how many there are.
    await waitFor(() => expect(document.activeElement).toBe(byTestId(target, "collection-name")[0]));
    expect(text(byTestId(target, "editor-status")[0])).toBe("Fix 2 problems to save");
    expect(saves()).toHaveLength(0);

    type(byTestId(target, "collection-name")[0], "Hello");
    type(byTestId(target, "script-content")[0], "Write-Output 'hello'");
    await waitFor(() => expect(byTestId(target, "field-error")).toHaveLength(0));
    button(target, "save-collection").click();
    await waitFor(() => expect(saves()).toHaveLength(1));
    expect(saves()[0]).toMatchObject({ id: "", name: "Hello", scripts: [{ name: "Script 1", content: "Write-Output 'hello'", timeoutSeconds: 600 }] });
    await waitFor(() => expect(text(byTestId(target, "editor-status")[0])).toMatch(/^Saved/));
  });

  it("checks timeouts (1 to 5400 s) and parameter names as they are typed", async () => {
    const { target } = open();
    byTestId(target, "script-toggle")[1].click();
    flushSync();
    const card = byTestId(target, "script-card")[1];
    const timeout = card.querySelector<HTMLInputElement>('[data-testid="script-timeout"]')!;
    type(timeout, "5401");
    await waitFor(() => expect(text(card.querySelector('[data-testid="field-error"]'))).toBe("1 to 5400 seconds (Run Command allows 90 minutes)."));
    expect(timeout.getAttribute("aria-invalid")).toBe("true");
    type(timeout, "5400");
    await waitFor(() => expect(card.querySelector('[data-testid="field-error"]')).toBeNull());

    type(card.querySelector<HTMLInputElement>('[data-testid="param-name"]')!, "2fast");
    await waitFor(() => expect(text(card.querySelector('[data-testid="field-error"]'))).toBe("Letters, digits or _, not starting with a digit."));
    // A collapsed script with a problem says so on its one line too.
    expect(text(card.querySelector(".meta"))).toContain("needs attention");
  });

  it("reorders scripts with the buttons and with Alt+Up/Down, keeping focus on what moved", async () => {
    const { target, names, saves } = open();
    expect(names()).toEqual(["Install FSLogix", "Install Teams", "Cleanup"]);
    // The first script cannot go up, the last cannot go down.
    expect(button(byTestId(target, "script-card")[0], "move-up").disabled).toBe(true);
    expect(button(byTestId(target, "script-card")[2], "move-down").disabled).toBe(true);

    button(byTestId(target, "script-card")[0], "move-down").click();
    await waitFor(() => expect(names()).toEqual(["Install Teams", "Install FSLogix", "Cleanup"]));
    await waitFor(() => expect(document.activeElement).toBe(button(byTestId(target, "script-card")[1], "move-down")));

    // Keyboard: Alt+Down on the focused script's header moves it again; at the bottom focus stays on a live button.
    document.activeElement!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", altKey: true, bubbles: true }));
    await waitFor(() => expect(names()).toEqual(["Install Teams", "Cleanup", "Install FSLogix"]));
    await waitFor(() => expect(document.activeElement).toBe(button(byTestId(target, "script-card")[2], "move-up")));
    const toggle = byTestId(byTestId(target, "script-card")[1], "script-toggle")[0];
    toggle.focus();
    toggle.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", altKey: true, bubbles: true }));
    await waitFor(() => expect(names()).toEqual(["Cleanup", "Install Teams", "Install FSLogix"]));
    await waitFor(() => expect(document.activeElement).toBe(byTestId(byTestId(target, "script-card")[0], "script-toggle")[0]));
    // Without Alt, arrows do nothing to the order.
    document.activeElement!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    flushSync();
    expect(names()).toEqual(["Cleanup", "Install Teams", "Install FSLogix"]);

    expect(text(byTestId(target, "editor-status")[0])).toBe("Unsaved changes");
    // Running what is on screen needs a save first.
    expect(button(target, "run-collection").disabled).toBe(true);
    button(target, "save-collection").click();
    await waitFor(() => expect(saves()).toHaveLength(1));
    expect(saves()[0].scripts.map((s) => s.name)).toEqual(["Cleanup", "Install Teams", "Install FSLogix"]);
    // Parameters and flags travel with their script.
    expect(saves()[0].scripts[1]).toMatchObject({ parameters: [{ name: "Channel", value: "ga" }], timeoutSeconds: 600 });
    expect(saves()[0].scripts[0].continueOnError).toBe(true);
    await waitFor(() => expect(button(target, "run-collection").disabled).toBe(false));
  });

  it("adds and removes scripts and parameters", async () => {
    const { target, names, saves } = open();
    button(target, "add-script").click();
    await waitFor(() => expect(names()).toHaveLength(4));
    const added = byTestId(target, "script-card")[3];
    // The new script opens with its name focused.
    await waitFor(() => expect(document.activeElement).toBe(added.querySelector('[data-testid="script-name"]')));
    type(added.querySelector<HTMLElement>('[data-testid="script-content"]')!, "Write-Output 'four'");
    button(added, "add-param").click();
    await waitFor(() => expect(added.querySelectorAll('[data-testid="param-name"]')).toHaveLength(1));
    type(added.querySelector<HTMLElement>('[data-testid="param-name"]')!, "Name");
    type(added.querySelector<HTMLElement>('[data-testid="param-value"]')!, "value");
    button(byTestId(target, "script-card")[0], "remove-script").click();
    await waitFor(() => expect(names()).toEqual(["Install Teams", "Cleanup", "Script 4"]));
    button(target, "save-collection").click();
    await waitFor(() => expect(saves()).toHaveLength(1));
    expect(saves()[0].scripts[2]).toEqual({
      name: "Script 4",
      content: "Write-Output 'four'",
      parameters: [{ name: "Name", value: "value" }],
      continueOnError: false,
      timeoutSeconds: 600,
    });
  });

  it("runs the saved collection on the registered master", async () => {
    const { target, onrun } = open();
    expect(text(button(target, "run-collection"))).toBe("Run on vm-golden-w11");
    button(target, "run-collection").click();
    await waitFor(() => expect(onrun).toHaveBeenCalledWith("col-1", master().vmId));
    await waitFor(() => expect(calls.some((c) => c.cmd === "start_script_run")).toBe(true));
  });
});
