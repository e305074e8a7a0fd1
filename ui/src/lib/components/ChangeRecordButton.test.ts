import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { byTestId, findByTestId, render, waitFor } from "../../test/util";
import ChangeRecordButton from "./ChangeRecordButton.svelte";

let cleanup: (() => void)[] = [];
afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

describe("ChangeRecordButton", () => {
  it("exports the release's change record and says where it went", async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      return {
        directory: "/data/change-records/2026.1127.1-20261127083000",
        html: "/data/change-records/2026.1127.1-20261127083000/change-record.html",
        evidence: "/data/change-records/2026.1127.1-20261127083000/evidence.json",
        manifest: "/data/change-records/2026.1127.1-20261127083000/manifest.json",
        evidenceSha256: "ab".repeat(32),
      };
    });
    const { target, destroy } = render(ChangeRecordButton, { version: "2026.1127.1" });
    cleanup.push(destroy);
    byTestId(target, "export-change-record")[0].click();
    const files = await findByTestId(target, "change-record-files");
    expect(calls[0]).toMatchObject({ cmd: "export_change_record", args: { version: "2026.1127.1" } });
    expect(files.textContent).toContain("2026.1127.1-20261127083000");
    expect(files.textContent).toContain("abababababababab");
  });

  it("shows why an export failed", async () => {
    mockIPC(() => Promise.reject({ code: "InvalidInput", message: "could not write /ro/x: read-only", requestId: null }));
    const { target, destroy } = render(ChangeRecordButton, { version: "2026.1127.1" });
    cleanup.push(destroy);
    byTestId(target, "export-change-record")[0].click();
    await waitFor(() => expect(target.textContent).toContain("read-only"));
  });
});
