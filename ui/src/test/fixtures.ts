import type {
  AppError,
  ConnectionInfo,
  HostRow,
  ImageVersionRow,
  PoolCard,
  RingBoard,
  RingLane,
  SyncStatus,
  VersionCount,
} from "../lib/bindings";

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
  subscriptions: [{ id: "sub-1", name: "AVD-Production", state: "Enabled" }],
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
