import type {
  AppError,
  ConnectionInfo,
  HostProgress,
  HostRow,
  HostStage,
  ImageVersionRow,
  PlannedHost,
  PoolCard,
  RingBoard,
  RingLane,
  RolloutPlan,
  RolloutPolicy,
  RolloutState,
  RolloutSummary,
  RolloutView,
  SyncStatus,
  VersionCount,
} from "../lib/bindings";
import { STAGES } from "../lib/rollouts";

export const NOW = Date.parse("2026-11-27T10:00:00Z");

export function pool(name: string, versions: VersionCount[], extra: Partial<PoolCard> = {}): PoolCard {
  const hosts = versions.reduce((n, v) => n + v.hosts, 0);
  return {
    id: `/subscriptions/sub-1/resourceGroups/rg-avd/providers/Microsoft.DesktopVirtualization/hostPools/${name}`,
    name,
    subscriptionId: "sub-1",
    subscriptionName: "AVD-Production",
    resourceGroup: "rg-avd",
    location: "westeurope",
    poolType: "pooled",
    hosts,
    available: hosts,
    draining: 0,
    unavailable: 0,
    unknown: 0,
    users: 0,
    versions,
    ...extra,
  };
}

function lane(name: string, pools: PoolCard[], dominantVersion: string | null): RingLane {
  return {
    name,
    key: name.toLowerCase(),
    pools,
    hosts: pools.reduce((n, p) => n + p.hosts, 0),
    users: pools.reduce((n, p) => n + p.users, 0),
    dominantVersion,
  };
}

export function syncStatus(extra: Partial<SyncStatus> = {}): SyncStatus {
  return {
    finishedRun: 0,
    running: false,
    syncedAt: new Date(NOW - 2 * 60_000).toISOString(),
    source: "resourceGraph",
    requests: 12,
    durationMs: 1800,
    lastError: null,
    ...extra,
  };
}

export function makeBoard(sync: SyncStatus = syncStatus()): RingBoard {
  return {
    rings: [
      lane("Test", [pool("hp-test-01", [{ version: "2026.1127.1", hosts: 4 }], { users: 7, draining: 1, available: 3 })], "2026.1127.1"),
      lane(
        "Pilot",
        [
          pool("hp-pilot-01", [
            { version: "2026.1127.1", hosts: 2 },
            { version: "2026.1113.2", hosts: 10 },
          ], { unavailable: 2, available: 10, users: 31 }),
          pool("hp-pilot-02", [{ version: "2026.1113.2", hosts: 6 }]),
        ],
        "2026.1113.2",
      ),
      lane(
        "Prod",
        [
          pool("hp-prod-01", [
            { version: "2026.1030.1", hosts: 40 },
            { version: "unknown", hosts: 3 },
          ], { users: 120 }),
        ],
        "2026.1030.1",
      ),
    ],
    unassigned: [pool("hp-kiosk", [{ version: "2026.1030.1", hosts: 2 }])],
    sync,
  };
}

export function makeVersions(): ImageVersionRow[] {
  const row = (name: string, rings: string[], hosts: number): ImageVersionRow => ({
    id: `/subscriptions/sub-1/resourceGroups/rg-img/providers/Microsoft.Compute/galleries/gal/images/win11/versions/${name}`,
    name,
    gallery: "gal",
    definition: "win11",
    location: "westeurope",
    published: "2026-11-20T08:00:00Z",
    endOfLife: null,
    excludeFromLatest: false,
    provisioningState: "Succeeded",
    replicationState: "Completed",
    regions: [{ region: "westeurope", state: "Completed", progress: 100, replicas: 2 }],
    rings,
    hosts,
  });
  // Deliberately not in order: the Images screen sorts newest first itself.
  return [row("2026.1030.1", ["Prod"], 42), row("2026.1127.1", ["Test", "Pilot"], 6), row("2026.1113.2", ["Pilot"], 16)];
}

export const CONNECTION: ConnectionInfo = {
  mode: "demo",
  tenantId: "00000000-0000-0000-0000-00000000c0de",
  tenantName: "Contoso (demo)",
  cloud: "AzureCloud",
  armEndpoint: "https://127.0.0.1:8443/",
  authorityHost: "https://127.0.0.1:8443/",
  credential: "client secret (simulated tenant)",
  subscriptions: [{ id: "sub-1", name: "AVD-Production", state: "Enabled", included: true }],
  databasePath: "/tmp/ringmaster.db",
};

export function host(i: number, extra: Partial<HostRow> = {}): HostRow {
  const name = `avd-${String(i).padStart(5, "0")}`;
  return {
    id: `host-${i}`,
    name,
    hostPool: makeBoard().rings[0].pools[0].id,
    ring: "Test",
    state: "available",
    status: "Available",
    allowNewSession: true,
    sessions: i % 5,
    imageVersion: "2026.1127.1",
    vmId: `vm-${i}`,
    lastHeartbeat: new Date(NOW - 60_000).toISOString(),
    failedChecks: [],
    ...extra,
  };
}

export const THROTTLED: AppError = {
  code: "arm_throttled",
  message: "Azure Resource Graph throttled the inventory query (HTTP 429).",
  requestId: "5b1f9c2e-0d7a-4e53-8f61-3c2d9a7e4b10",
};

export const POLICY: RolloutPolicy = {
  capacity: { type: "percent", percent: 20 },
  drainMode: "forceLogoff",
  logoffDelayMinutes: 15,
  message: "This desktop is being updated. Please save your work and sign out.",
  maxFailures: 1,
  canary: true,
  standby: false,
  surge: false,
};

export function plannedHost(i: number, extra: Partial<PlannedHost> = {}): PlannedHost {
  return { name: `avd-${String(i).padStart(5, "0")}`, vmId: `vm-${i}`, sessions: i % 4, state: "available", currentVersion: "2026.1113.2", ...extra };
}

export function makePlan(extra: Partial<RolloutPlan> = {}): RolloutPlan {
  const hosts = Array.from({ length: 12 }, (_, i) => plannedHost(i + 1));
  return {
    hostPoolId: makeBoard().rings[1].pools[0].id,
    poolName: "hp-pilot-01",
    ring: "Pilot",
    location: "westeurope",
    targetVersion: "2026.1127.1",
    targetVersionId: "/subscriptions/sub-1/.../versions/2026.1127.1",
    hosts,
    alreadyCurrent: 2,
    poolHosts: 14,
    maxOutOfService: 2,
    usersNow: hosts.reduce((n, h) => n + h.sessions, 0),
    estimatedMinutes: 210,
    replicationState: "Completed",
    blockers: [],
    warnings: [],
    ...extra,
  };
}

export const ROLLOUT_ID = "ro-0001";

/** A rollout with one host in each of the given stages (host names avd-h1, avd-h2...). */
export function makeRollout(stages: HostStage[], extra: Partial<RolloutView> = {}): RolloutView {
  const hosts: HostProgress[] = stages.map((stage, i) => ({
    name: `avd-h${i + 1}.corp.contoso.com`,
    stage,
    sessions: stage === "waitingForLogoff" ? 3 : 0,
    startedAt: stage === "queued" || stage === "skipped" ? null : new Date(NOW - (30 - i) * 60_000).toISOString(),
    finishedAt: stage === "done" || stage === "failed" ? new Date(NOW - (10 - i) * 60_000).toISOString() : null,
    error: stage === "failed" ? "The VM did not register with the host pool within 20 minutes." : null,
    requestId: stage === "failed" ? "9d1c5e7a-0b3f-4c2d-8e6a-1f2b3c4d5e6f" : null,
  }));
  return {
    id: ROLLOUT_ID,
    kind: "rollout",
    hostPoolId: makeBoard().rings[0].pools[0].id,
    poolName: "hp-test-01",
    ring: "Test",
    targetVersion: "2026.1127.1",
    previousVersion: "2026.1113.2",
    state: "running",
    reason: null,
    createdAt: new Date(NOW - 40 * 60_000).toISOString(),
    finishedAt: null,
    policy: POLICY,
    maxOutOfService: 2,
    hosts,
    stages: STAGES.map((stage) => ({ stage, hosts: stages.filter((s) => s === stage).length })),
    done: stages.filter((s) => s === "done").length,
    total: stages.length,
    usersConnected: hosts.filter((h) => h.stage === "waitingForLogoff").reduce((n, h) => n + h.sessions, 0),
    etaMinutes: 25,
    events: [
      { at: new Date(NOW - 40 * 60_000).toISOString(), host: null, level: "info", message: "Rolling out 2026.1127.1", requestId: null },
      {
        at: new Date(NOW - 20 * 60_000).toISOString(),
        host: "avd-h2.corp.contoso.com",
        level: "info",
        message: "Creating the VM from 2026.1127.1",
        requestId: "4b7e2d10-5c3a-4f8e-9a1b-2c3d4e5f6a7b",
      },
      {
        at: new Date(NOW - 5 * 60_000).toISOString(),
        host: "avd-h4.corp.contoso.com",
        level: "error",
        message: "The VM did not register with the host pool within 20 minutes.",
        requestId: "9d1c5e7a-0b3f-4c2d-8e6a-1f2b3c4d5e6f",
      },
    ],
    ...extra,
  };
}

export function summary(id: string, state: RolloutState, extra: Partial<RolloutSummary> = {}): RolloutSummary {
  return {
    id,
    kind: "rollout",
    hostPoolId: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DesktopVirtualization/hostPools/hp-test-01",
    poolName: "hp-test-01",
    ring: "Test",
    targetVersion: "2026.1127.1",
    state,
    done: 1,
    total: 4,
    createdAt: new Date(NOW - 40 * 60_000).toISOString(),
    finishedAt: null,
    ...extra,
  };
}
