import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makeBoard } from "../../test/fixtures";
import { byTestId, findByTestId, render, waitFor } from "../../test/util";
import type { ProfileSettings } from "../bindings";
import ProfileDialog from "./ProfileDialog.svelte";

const pool = makeBoard().rings[0].pools[0];
const PROFILE: ProfileSettings = {
  vmSize: "Standard_D4s_v5",
  zones: ["1"],
  osDiskType: "Premium_LRS",
  osDiskSizeGb: null,
  subnetId: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/snet",
  location: "westeurope",
  securityType: "TrustedLaunch",
  joinType: "AzureAD",
  domain: "",
  ouPath: "",
  joinUser: "",
  joinPassword: null,
  joinPasswordStored: false,
};

let saved: ProfileSettings[] = [];
let cleanup: (() => void)[] = [];

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function open(profile: ProfileSettings) {
  saved = [];
  mockIPC((cmd, args) => {
    if (cmd === "get_pool_profile") return profile;
    if (cmd === "set_pool_profile") {
      const p = (args as { profile: ProfileSettings }).profile;
      saved.push(p);
      return { ...p, joinPassword: null, joinPasswordStored: p.joinPasswordStored || !!p.joinPassword };
    }
    return Promise.reject(`command ${cmd} not found`);
  });
  const onclose = vi.fn();
  const view = render(ProfileDialog, { pool, onclose });
  cleanup.push(view.destroy);
  return { ...view, onclose };
}

function type(input: Element, value: string): void {
  const el = input as HTMLInputElement | HTMLSelectElement;
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? "change" : "input", { bubbles: true }));
}

describe("Deployment profile dialog", () => {
  it("asks for the domain, the account and its password only for an AD DS join", async () => {
    const { target } = open(PROFILE);
    const join = await findByTestId(target, "profile-join");
    expect(byTestId(target, "profile-domain")).toHaveLength(0);
    type(join, "ActiveDirectory");
    const domain = await findByTestId(target, "profile-domain");
    const password = byTestId(target, "profile-join-password")[0] as HTMLInputElement;
    expect(password.type).toBe("password");
    expect(password.placeholder).toBe("required");
    type(domain, "corp.contoso.com");
    type(byTestId(target, "profile-join-user")[0], "svc-avdjoin@corp.contoso.com");
    type(password, "s3cret!");
    (byTestId(target, "profile-save")[0] as HTMLButtonElement).click();
    await waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0]).toMatchObject({
      joinType: "ActiveDirectory",
      domain: "corp.contoso.com",
      joinUser: "svc-avdjoin@corp.contoso.com",
      joinPassword: "s3cret!",
      securityType: "TrustedLaunch",
    });
  });

  it("keeps a stored password when the field is left empty, and says so", async () => {
    const { target, onclose } = open({
      ...PROFILE,
      joinType: "ActiveDirectory",
      domain: "corp.contoso.com",
      joinUser: "CORP\\svc-join",
      joinPasswordStored: true,
    });
    const password = (await findByTestId(target, "profile-join-password")) as HTMLInputElement;
    expect(password.placeholder).toBe("stored: leave empty to keep it");
    expect(password.value).toBe("");
    type(byTestId(target, "profile-security")[0], "Standard");
    (byTestId(target, "profile-save")[0] as HTMLButtonElement).click();
    await waitFor(() => expect(onclose).toHaveBeenCalled());
    expect(saved[0].joinPassword).toBeNull();
    expect(saved[0].securityType).toBe("Standard");
  });
});
