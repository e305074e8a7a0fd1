import { commands, type AppError, type AppRole, type Notice } from "../bindings";
import { settle, type Result } from "../ipc";

/**
 * What this app is on this machine (an operator's or a reviewer's) and what it has to tell people now
 * (an automatic rollback). Shared by every screen: a reviewer's app hides the buttons that change Azure.
 */
export class Session {
  role = $state<AppRole>("operator");
  notices = $state.raw<Notice[]>([]);

  get reviewer(): boolean {
    return this.role === "reviewer";
  }

  async load(): Promise<void> {
    const [role, notices] = await Promise.all([settle(commands.getAppRole()), settle(commands.getNotices())]);
    if (role.status === "ok") this.role = role.data;
    if (notices.status === "ok") this.notices = notices.data;
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
