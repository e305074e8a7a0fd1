import { commands, type AppError, type AppRole, type Notice, type SessionInfo, type TenantChoice } from "../bindings";
import { settle, type Result } from "../ipc";

/**
 * What this app is on this machine (an operator's or a reviewer's) and what it has to tell people now
 * (an automatic rollback). Shared by every screen: a reviewer's app hides the buttons that change Azure.
 */
export class Session {
  role = $state<AppRole>("operator");
  notices = $state.raw<Notice[]>([]);
  /** The signed-in person in interactive mode; `null` in the demo and with the Azure CLI. */
  account = $state.raw<SessionInfo | null>(null);
  tenants = $state.raw<TenantChoice[]>([]);

  /** Interactive mode and nobody signed in: the app shows the sign-in screen. */
  get needsSignIn(): boolean {
    return this.account !== null && !this.account.signedIn;
  }

  get reviewer(): boolean {
    return this.role === "reviewer";
  }

  async load(): Promise<void> {
    const [role, notices, account] = await Promise.all([
      settle(commands.getAppRole()),
      settle(commands.getNotices()),
      settle(commands.getSession()),
    ]);
    if (role.status === "ok") this.role = role.data;
    if (notices.status === "ok") this.notices = notices.data;
    if (account.status === "ok") this.account = account.data;
  }

  async loadTenants(): Promise<Result<TenantChoice[], AppError>> {
    const result = await settle(commands.getTenants());
    if (result.status === "ok") this.tenants = result.data;
    return result;
  }

  async switchTenant(tenantId: string): Promise<Result<SessionInfo, AppError>> {
    const result = await settle(commands.switchTenant(tenantId));
    if (result.status === "ok") {
      this.account = result.data;
      await this.loadTenants();
    }
    return result;
  }

  async signOut(): Promise<Result<SessionInfo, AppError>> {
    const result = await settle(commands.signOut());
    if (result.status === "ok") this.account = result.data;
    return result;
  }

  async loadNotices(): Promise<void> {
    const result = await settle(commands.getNotices());
    if (result.status === "ok") this.notices = result.data;
  }

  async dismiss(id: string): Promise<void> {
    this.notices = this.notices.filter((n) => n.id !== id);
    await settle(commands.dismissNotice(id));
  }

  async setRole(role: AppRole): Promise<Result<AppRole, AppError>> {
    const result = await settle(commands.setAppRole(role));
    if (result.status === "ok") this.role = result.data;
    return result;
  }
}

export const session = new Session();
