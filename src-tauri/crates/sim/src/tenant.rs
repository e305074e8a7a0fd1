//! The simulated tenant's resources, kept as the ARM JSON they are served as, and the seeds that fill it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Which believable tenant to start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// 3 subscriptions, 7 host pools in 3 rings, 224 hosts.
    Demo,
    /// 20 subscriptions, 200 host pools, 10,000 session hosts.
    Large,
    /// One Prod pool of N hosts (`rollout:N`), for the rollout benchmark.
    Rollout(usize),
}

impl std::str::FromStr for Seed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "demo" => Ok(Seed::Demo),
            "large" => Ok(Seed::Large),
            other => match other.strip_prefix("rollout:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..=5000).contains(&n) => Ok(Seed::Rollout(n)),
                _ => Err(format!("unknown seed '{other}': use demo, large or rollout:N (N hosts, 1-5000)")),
            },
        }
    }
}

/// The sim's clock: wall time at start plus elapsed real time times the scale, so replication and
/// heartbeats move faster than real time when asked.
#[derive(Debug, Clone)]
pub struct SimClock {
    started: Instant,
    start_wall: OffsetDateTime,
    scale: f64,
}

impl SimClock {
    pub fn new(scale: f64) -> Self {
        SimClock { started: Instant::now(), start_wall: OffsetDateTime::now_utc(), scale }
    }
    pub fn now(&self) -> OffsetDateTime {
        let elapsed = self.started.elapsed().as_secs_f64() * self.scale;
        self.start_wall + Duration::from_secs_f64(elapsed)
    }
    pub fn start(&self) -> OffsetDateTime {
        self.start_wall
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub state: String,
}

/// Replication of one image version to one region, as a function of sim time.
#[derive(Debug, Clone)]
pub struct RegionPlan {
    pub region: String,
    pub replicas: u32,
    /// Sim seconds after sim start when replication to the region starts.
    pub starts_at_s: i64,
    /// Sim seconds after sim start when replication completes; negative = already complete.
    pub completes_at_s: i64,
    pub fails: bool,
    /// Why it failed; a generic copy timeout when empty.
    pub detail: String,
}

#[derive(Debug)]
pub struct Tenant {
    pub tenant_id: String,
    pub display_name: String,
    pub subscriptions: Vec<Subscription>,
    /// Every ARM resource by lower-cased id. BTreeMap: listing order is stable, which paging needs.
    pub resources: BTreeMap<String, Value>,
    /// Replication plans by lower-cased image version id.
    pub replication: BTreeMap<String, Vec<RegionPlan>>,
    /// Operations in flight, agents about to register, users about to log off, safety counters.
    pub sim: crate::lifecycle::SimState,
}

pub const TENANT_ID: &str = "6a1d3f8e-2b7c-4c1e-9d5a-0f3e8b2c7a41";

impl Tenant {
    pub fn insert(&mut self, v: Value) {
        let id = v["id"].as_str().expect("resource has id").to_ascii_lowercase();
        self.resources.insert(id, v);
    }

    /// Resources of `rtype` (case-insensitive ARM type) whose id starts with `scope`.
    pub fn list<'a>(&'a self, scope: &str, rtype: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        let prefix = scope.to_ascii_lowercase();
        self.resources
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .filter(move |v| v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(rtype)))
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.resources.get(&id.to_ascii_lowercase())
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.resources.get_mut(&id.to_ascii_lowercase())
    }

    /// The replication status of an image version at sim time `now_s` (seconds since start).
    pub fn replication_status(&self, version_id: &str, now_s: i64) -> Option<Value> {
        let plans = self.replication.get(&version_id.to_ascii_lowercase())?;
        let mut summary = Vec::new();
        let mut all_done = true;
        let mut any_failed = false;
        for p in plans {
            let (state, progress) = if p.fails {
                any_failed = true;
                ("Failed", 37)
            } else if now_s >= p.completes_at_s {
                ("Completed", 100)
            } else {
                all_done = false;
                let total = (p.completes_at_s - p.starts_at_s).max(1) as f64;
                let left = (p.completes_at_s - now_s) as f64;
                ("Replicating", ((1.0 - left / total).clamp(0.0, 0.99) * 100.0) as i64)
            };
            let details = match (p.fails, p.detail.is_empty()) {
                (true, true) => "Replication failed: the operation timed out while copying the blob to the region.",
                (true, false) => p.detail.as_str(),
                _ => "",
            };
            summary.push(json!({
                "region": display_region(&p.region),
                "state": state,
                "details": details,
                "progress": progress,
            }));
        }
        let aggregated = if any_failed {
            "Failed"
        } else if all_done {
            "Completed"
        } else {
            "InProgress"
        };
        Some(json!({"aggregatedState": aggregated, "summary": summary}))
    }
}

/// ARM returns display names for gallery regions ("West Europe").
pub fn display_region(region: &str) -> String {
    match region {
        "westeurope" => "West Europe".into(),
        "northeurope" => "North Europe".into(),
        "uksouth" => "UK South".into(),
        "eastus2" => "East US 2".into(),
        "swedencentral" => "Sweden Central".into(),
        other => other.into(),
    }
}

fn guid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

struct PoolSpec {
    sub: usize,
    name: String,
    rg: String,
    location: String,
    ring: Option<&'static str>,
    hosts: usize,
    prefix: String,
    /// (version index, weight) the pool's hosts are drawn from.
    versions: Vec<(usize, u32)>,
}

pub fn build(seed: Seed, clock: &SimClock) -> Tenant {
    let mut t = match seed {
        Seed::Demo => build_demo(clock),
        Seed::Large => build_large(clock),
        Seed::Rollout(hosts) => build_rollout(clock, hosts),
    };
    // A separate generator, so the seeded hosts, versions and sessions stay what they always were.
    let mut rng = StdRng::seed_from_u64(0x5e55_10c4);
    add_host_infrastructure(&mut t, &mut rng, clock);
    if seed != Seed::Large {
        add_golden_master(&mut t, clock);
    }
    t.init_dynamics(clock.start(), &mut rng);
    t.init_quota();
    t
}

/// The golden master's resource group, VM, and the isolated subnet temporary capture VMs go to.
pub const MASTER_RG: &str = "rg-avd-build";
pub const MASTER_VM: &str = "vm-golden-w11";
pub const CAPTURE_SUBNET: &str = "snet-capture";

/// The golden master the app captures images from, in the first subscription: a running Windows 11 multi-session
/// VM (Standard_D4s_v5, Trusted Launch) built from the marketplace image, tagged `ringmaster-golden-master` with the
/// gallery image definition its captures become versions of, its NIC on `vnet-avd-build/snet-golden`, its OS disk a
/// managed disk it owns. Temporary capture VMs go to `vnet-avd-build/snet-capture`, which has no line of sight to
/// the domain (so the master's copy cannot collide with the master).
fn add_golden_master(t: &mut Tenant, clock: &SimClock) {
    // Its own generator: the rest of the seed stays what it always was.
    let mut rng = StdRng::seed_from_u64(0x0901_de11);
    let sub_id = t.subscriptions[0].id.clone();
    add_resource_group(t, &sub_id, MASTER_RG, "westeurope");
    let rg_id = format!("/subscriptions/{sub_id}/resourceGroups/{MASTER_RG}");
    let vm_id = format!("{rg_id}/providers/Microsoft.Compute/virtualMachines/{MASTER_VM}");
    let nic_id = format!("{rg_id}/providers/Microsoft.Network/networkInterfaces/{MASTER_VM}-nic");
    let suffix: String = (0..32).map(|_| format!("{:x}", rng.random_range(0..16u8))).collect();
    let disk_name = format!("{MASTER_VM}_OsDisk_1_{suffix}");
    let disk_id = format!("{rg_id}/providers/Microsoft.Compute/disks/{disk_name}");
    let created = rfc3339(clock.start() - Duration::from_secs(86400 * 41));
    let os_disk = json!({
        "osType": "Windows",
        "name": disk_name,
        "createOption": "FromImage",
        "caching": "ReadWrite",
        "managedDisk": {"storageAccountType": "Premium_LRS", "id": disk_id},
        "diskSizeGB": 128,
        "deleteOption": "Detach"
    });
    t.insert(json!({
        "id": vm_id,
        "name": MASTER_VM,
        "type": crate::lifecycle::VM_TYPE,
        "location": "westeurope",
        "tags": {
            crate::lifecycle::MASTER_TAG: IMAGE_DEF,
            "ringmaster-capture-subnet": format!("{rg_id}/providers/Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/{CAPTURE_SUBNET}"),
            "cost-center": "IT-EUC"
        },
        "properties": {
            "vmId": guid(&mut rng),
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "MicrosoftWindowsDesktop",
                    "offer": "office-365",
                    "sku": "win11-24h2-avd-m365",
                    "version": "latest",
                    "exactVersion": "26100.2314.241107"
                },
                "osDisk": os_disk,
                "dataDisks": []
            },
            "osProfile": {
                "computerName": MASTER_VM,
                "adminUsername": "rmadmin",
                "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": false},
                "secrets": [],
                "allowExtensionOperations": true
            },
            "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true, "deleteOption": "Detach"}}]},
            "licenseType": "Windows_Client",
            "provisioningState": "Succeeded",
            "timeCreated": created
        }
    }));
    let subnet = format!("{rg_id}/providers/Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/snet-golden");
    let ip = t.sim.allocate_ip();
    let mut nic = crate::rollout::nic_json(
        &nic_id,
        &format!("{MASTER_VM}-nic"),
        &json!("westeurope"),
        &json!({}),
        &[(String::from("ipconfig1"), subnet, ip, "Dynamic".into())],
        "Succeeded",
        &mut rng,
    );
    nic["properties"]["virtualMachine"] = json!({"id": vm_id});
    nic["properties"]["primary"] = json!(true);
    t.insert(nic);
    let mut disk = crate::rollout::disk_json(&disk_id, &json!("westeurope"), &vm_id, &os_disk, "", &created, &mut rng);
    let image = format!("/Subscriptions/{sub_id}/Providers/Microsoft.Compute/Locations/westeurope/Publishers/MicrosoftWindowsDesktop/ArtifactTypes/VMImage/Offers/office-365/Skus/win11-24h2-avd-m365/Versions/26100.2314.241107");
    disk["properties"]["creationData"] = json!({"createOption": "FromImage", "imageReference": {"id": image}});
    disk["properties"]["securityProfile"] = json!({"securityType": "TrustedLaunch"});
    disk["properties"]["supportedCapabilities"] = json!({"architecture": "x64"});
    t.insert(disk);
}

/// The NIC and OS disk of every seeded VM, attached to it (the VMs were deployed with deleteOption `Delete`).
fn add_host_infrastructure(t: &mut Tenant, rng: &mut StdRng, clock: &SimClock) {
    let vms: Vec<Value> = t
        .resources
        .values()
        .filter(|v| v["type"].as_str().is_some_and(|ty| ty.eq_ignore_ascii_case(crate::lifecycle::VM_TYPE)))
        .cloned()
        .collect();
    let created = rfc3339(clock.start() - Duration::from_secs(86400 * 3));
    for vm in vms {
        let vm_id = vm["id"].as_str().unwrap_or_default().to_string();
        let location = vm["location"].clone();
        if let Some(nic_id) = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"].as_str() {
            let name = nic_id.rsplit('/').next().unwrap_or_default();
            let subnet = format!(
                "{}/providers/Microsoft.Network/virtualNetworks/vnet-avd-{}/subnets/snet-hosts",
                crate::lifecycle::rg_of(&vm_id),
                location.as_str().unwrap_or_default()
            );
            let ip = t.sim.allocate_ip();
            let nic = crate::rollout::nic_json(
                nic_id,
                name,
                &location,
                &json!({}),
                &[(String::from("ipconfig1"), subnet, ip, "Dynamic".into())],
                "Succeeded",
                rng,
            );
            t.insert(nic);
            if let Some(n) = t.get_mut(nic_id) {
                n["properties"]["virtualMachine"] = json!({"id": vm_id});
                n["properties"]["primary"] = json!(true);
            }
        }
        let os = &vm["properties"]["storageProfile"]["osDisk"];
        if let Some(disk_id) = os["managedDisk"]["id"].as_str() {
            let image = vm["properties"]["storageProfile"]["imageReference"]["id"].as_str().unwrap_or_default();
            let disk = crate::rollout::disk_json(disk_id, &location, &vm_id, os, image, &created, rng);
            t.insert(disk);
        }
        if let Some(v) = t.get_mut(&vm_id) {
            v["properties"]["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] = json!("Delete");
        }
    }
}

const IMAGE_DEF: &str = "win11-24h2-avd-m365";

fn build_demo(clock: &SimClock) -> Tenant {
    let mut rng = StdRng::seed_from_u64(20261127);
    let subs = vec![
        sub("1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01", "Contoso AVD Shared Services"),
        sub("1b2c3d4e-0002-4a5b-8c7d-1e2f3a4b5c02", "Contoso AVD Pilot"),
        sub("1b2c3d4e-0003-4a5b-8c7d-1e2f3a4b5c03", "Contoso AVD Production"),
    ];
    let mut t = Tenant {
        tenant_id: TENANT_ID.into(),
        display_name: "Contoso (demo)".into(),
        subscriptions: subs,
        resources: BTreeMap::new(),
        replication: BTreeMap::new(),
        sim: Default::default(),
    };
    // Newest last. Days before now, and replication per region: (region, replicas, completes_in_s, fails).
    let versions: Vec<VersionSeed<'_>> = vec![
        ("2026.1022.1", 36, vec![("westeurope", 3, -1, false), ("northeurope", 3, -1, false)]),
        ("2026.1105.1", 22, vec![("westeurope", 3, -1, false), ("northeurope", 3, -1, false)]),
        ("2026.1113.1", 14, vec![("westeurope", 2, -1, false), ("northeurope", 2, 0, true)]),
        ("2026.1120.2", 7, vec![("westeurope", 2, -1, false), ("northeurope", 2, -1, false)]),
        ("2026.1127.1", 0, vec![("westeurope", 2, -1, false), ("northeurope", 2, 2400, false)]),
    ];
    let gallery_rg = "rg-avd-images";
    let gallery = "gal_avd_contoso";
    let version_ids = add_gallery(&mut t, &mut rng, clock, 0, gallery_rg, gallery, &versions);

    let pools = vec![
        pool(1, "hp-test-weu", "rg-avd-test", "westeurope", Some("test"), 4, "avdtst", vec![(4, 3), (3, 1)]),
        pool(1, "hp-pilot-weu", "rg-avd-pilot", "westeurope", Some("pilot"), 10, "avdplw", vec![(3, 9), (1, 1)]),
        pool(1, "hp-pilot-neu", "rg-avd-pilot", "northeurope", Some("pilot"), 10, "avdpln", vec![(3, 1)]),
        pool(2, "hp-prod-weu-1", "rg-avd-prod-weu", "westeurope", Some("prod"), 50, "avdpw1", vec![(1, 9), (0, 1)]),
        pool(2, "hp-prod-weu-2", "rg-avd-prod-weu", "westeurope", Some("prod"), 50, "avdpw2", vec![(1, 1)]),
        pool(2, "hp-prod-neu-1", "rg-avd-prod-neu", "northeurope", Some("prod"), 50, "avdpn1", vec![(1, 4), (0, 1)]),
        pool(2, "hp-prod-neu-2", "rg-avd-prod-neu", "northeurope", Some("prod"), 50, "avdpn2", vec![(1, 1)]),
        pool(0, "hp-it-admins", "rg-avd-admin", "westeurope", None, 2, "avdadm", vec![(2, 1)]),
    ];
    for p in &pools {
        add_pool(&mut t, &mut rng, clock, p, &version_ids);
    }
    t
}

fn build_large(clock: &SimClock) -> Tenant {
    let mut rng = StdRng::seed_from_u64(10_000);
    let subs: Vec<Subscription> = (0..20)
        .map(|i| sub(&format!("2c3d4e5f-{i:04x}-4b6c-9d8e-2f3a4b5c6d{i:02x}"), &format!("Fabrikam AVD {:02}", i + 1)))
        .collect();
    let mut t = Tenant {
        tenant_id: TENANT_ID.into(),
        display_name: "Fabrikam (large)".into(),
        subscriptions: subs,
        resources: BTreeMap::new(),
        replication: BTreeMap::new(),
        sim: Default::default(),
    };
    let versions: Vec<VersionSeed<'_>> = vec![
        ("2026.1001.1", 57, vec![("westeurope", 10, -1, false), ("northeurope", 10, -1, false)]),
        ("2026.1016.1", 42, vec![("westeurope", 10, -1, false), ("northeurope", 10, -1, false)]),
        ("2026.1030.1", 28, vec![("westeurope", 10, -1, false), ("northeurope", 10, -1, false)]),
        ("2026.1113.2", 14, vec![("westeurope", 10, -1, false), ("northeurope", 10, -1, false)]),
        ("2026.1127.1", 0, vec![("westeurope", 5, -1, false), ("northeurope", 5, 3600, false)]),
    ];
    let version_ids = add_gallery(&mut t, &mut rng, clock, 0, "rg-avd-images", "gal_avd_fabrikam", &versions);
    for i in 0..200usize {
        let (ring, mix) = match i {
            0..=9 => ("test", vec![(4, 1)]),
            10..=49 => ("pilot", vec![(3, 4), (4, 1)]),
            _ => ("prod", vec![(2, 6), (1, 1)]),
        };
        let location = if i % 2 == 0 { "westeurope" } else { "northeurope" };
        let p = pool(
            i % 20,
            &format!("hp-{ring}-{i:03}"),
            &format!("rg-avd-{ring}-{:02}", i % 20),
            location,
            Some(ring),
            50,
            &format!("h{i:03}"),
            mix,
        );
        add_pool(&mut t, &mut rng, clock, &p, &version_ids);
    }
    t
}

fn build_rollout(clock: &SimClock, hosts: usize) -> Tenant {
    let mut rng = StdRng::seed_from_u64(1000);
    let mut t = Tenant {
        tenant_id: TENANT_ID.into(),
        display_name: format!("Northwind (one pool of {hosts})"),
        subscriptions: vec![sub("3d4e5f60-0001-4c7d-8e9f-3a4b5c6d7e01", "Northwind AVD")],
        resources: BTreeMap::new(),
        replication: BTreeMap::new(),
        sim: Default::default(),
    };
    let versions: Vec<VersionSeed<'_>> = vec![
        ("2026.1030.1", 28, vec![("westeurope", 50, -1, false)]),
        ("2026.1113.2", 14, vec![("westeurope", 50, -1, false)]),
    ];
    let version_ids = add_gallery(&mut t, &mut rng, clock, 0, "rg-avd-images", "gal_avd_northwind", &versions);
    let p = pool(0, "hp-prod-bench", "rg-avd-prod", "westeurope", Some("prod"), hosts, "bench", vec![(1, 1)]);
    add_pool(&mut t, &mut rng, clock, &p, &version_ids);
    t
}

fn sub(id: &str, name: &str) -> Subscription {
    Subscription { id: id.into(), name: name.into(), state: "Enabled".into() }
}

#[allow(clippy::too_many_arguments)]
fn pool(
    sub: usize,
    name: &str,
    rg: &str,
    location: &str,
    ring: Option<&'static str>,
    hosts: usize,
    prefix: &str,
    versions: Vec<(usize, u32)>,
) -> PoolSpec {
    PoolSpec {
        sub,
        name: name.into(),
        rg: rg.into(),
        location: location.into(),
        ring,
        hosts,
        prefix: prefix.into(),
        versions,
    }
}

type VersionSeed<'a> = (&'a str, i64, Vec<(&'a str, u32, i64, bool)>);

fn add_gallery(
    t: &mut Tenant,
    rng: &mut StdRng,
    clock: &SimClock,
    sub_index: usize,
    rg: &str,
    gallery: &str,
    versions: &[VersionSeed<'_>],
) -> Vec<String> {
    let sub_id = t.subscriptions[sub_index].id.clone();
    let rg_id = format!("/subscriptions/{sub_id}/resourceGroups/{rg}");
    add_resource_group(t, &sub_id, rg, "westeurope");
    let gallery_id = format!("{rg_id}/providers/Microsoft.Compute/galleries/{gallery}");
    t.insert(json!({
        "id": gallery_id,
        "name": gallery,
        "type": "Microsoft.Compute/galleries",
        "location": "westeurope",
        "tags": {},
        "properties": {
            "description": "Golden images for Azure Virtual Desktop",
            "identifier": {"uniqueName": format!("{sub_id}-{}", gallery.to_uppercase())},
            "provisioningState": "Succeeded"
        }
    }));
    let def_id = format!("{gallery_id}/images/{IMAGE_DEF}");
    t.insert(json!({
        "id": def_id,
        "name": IMAGE_DEF,
        "type": "Microsoft.Compute/galleries/images",
        "location": "westeurope",
        "tags": {},
        "properties": {
            "osType": "Windows",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "architecture": "x64",
            "identifier": {"publisher": "Contoso", "offer": "avd", "sku": "win11-24h2-m365"},
            "features": [{"name": "SecurityType", "value": "TrustedLaunchSupported"}],
            "provisioningState": "Succeeded"
        }
    }));
    let now = clock.start();
    let mut ids = Vec::new();
    for (name, days_ago, regions) in versions {
        let id = format!("{def_id}/versions/{name}");
        let published = now - Duration::from_secs((*days_ago as u64) * 86400 + 3600 * 5);
        let eol = published + Duration::from_secs(180 * 86400);
        let target_regions: Vec<Value> = regions
            .iter()
            .map(|(r, n, _, _)| {
                json!({"name": display_region(r), "regionalReplicaCount": n, "storageAccountType": "Standard_ZRS", "excludeFromLatest": false})
            })
            .collect();
        // Only releases that reached Prod are visible to "latest".
        let exclude = !matches!(*name, "2026.1105.1" | "2026.1022.1" | "2026.1001.1" | "2026.1016.1" | "2026.1030.1");
        t.insert(json!({
            "id": id,
            "name": name,
            "type": "Microsoft.Compute/galleries/images/versions",
            "location": "westeurope",
            "tags": {"ringmaster-release": name},
            "properties": {
                "publishingProfile": {
                    "targetRegions": target_regions,
                    "replicaCount": 1,
                    "excludeFromLatest": exclude,
                    "publishedDate": rfc3339(published),
                    "endOfLifeDate": rfc3339(eol),
                    "storageAccountType": "Standard_ZRS",
                    "replicationMode": "Full"
                },
                "storageProfile": {
                    "source": {"virtualMachineId": format!("/subscriptions/{sub_id}/resourceGroups/rg-avd-build/providers/Microsoft.Compute/virtualMachines/vm-capture-{}", rng.random_range(1000..9999))},
                    "osDiskImage": {"sizeInGB": 128, "hostCaching": "ReadWrite"}
                },
                "safetyProfile": {"allowDeletionOfReplicatedLocations": false, "reportedForPolicyViolation": false},
                "provisioningState": "Succeeded"
            }
        }));
        let plans = regions
            .iter()
            .map(|(r, n, completes, fails)| RegionPlan {
                region: r.to_string(),
                replicas: *n,
                // Seeded replication started 2 sim-hours before it completes.
                starts_at_s: *completes - 7200,
                completes_at_s: *completes,
                fails: *fails,
                detail: String::new(),
            })
            .collect();
        t.replication.insert(id.to_ascii_lowercase(), plans);
        ids.push(id);
    }
    ids
}

fn add_resource_group(t: &mut Tenant, sub_id: &str, rg: &str, location: &str) {
    let id = format!("/subscriptions/{sub_id}/resourceGroups/{rg}");
    if t.get(&id).is_some() {
        return;
    }
    t.insert(json!({
        "id": id,
        "name": rg,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "tags": {},
        "properties": {"provisioningState": "Succeeded"}
    }));
}

pub(crate) const USERS: &[&str] = &[
    "amara.okafor",
    "ben.larsen",
    "chloe.martin",
    "diego.alvarez",
    "elif.yilmaz",
    "finn.murphy",
    "grace.chen",
    "hugo.bernard",
    "isla.novak",
    "jonas.weber",
    "kenji.sato",
    "lena.fischer",
    "mateo.rossi",
    "nora.hansen",
    "omar.haddad",
    "priya.nair",
    "quinn.obrien",
    "rosa.silva",
    "sven.nilsson",
    "tara.kowalski",
];

fn add_pool(t: &mut Tenant, rng: &mut StdRng, clock: &SimClock, p: &PoolSpec, version_ids: &[String]) {
    let sub_id = t.subscriptions[p.sub].id.clone();
    add_resource_group(t, &sub_id, &p.rg, &p.location);
    let rg_id = format!("/subscriptions/{sub_id}/resourceGroups/{}", p.rg);
    let hp_id = format!("{rg_id}/providers/Microsoft.DesktopVirtualization/hostPools/{}", p.name);
    let mut tags = serde_json::Map::new();
    if let Some(ring) = p.ring {
        tags.insert("ringmaster-ring".into(), json!(ring));
    }
    tags.insert("cost-center".into(), json!("IT-EUC"));
    t.insert(json!({
        "id": hp_id,
        "name": p.name,
        "type": "Microsoft.DesktopVirtualization/hostpools",
        "location": p.location,
        "tags": tags,
        "properties": {
            "objectId": guid(rng),
            "friendlyName": p.name,
            "description": format!("AVD pooled desktops ({})", p.ring.unwrap_or("unassigned")),
            "hostPoolType": "Pooled",
            "maxSessionLimit": 12,
            "loadBalancerType": "BreadthFirst",
            "validationEnvironment": p.ring == Some("test"),
            "preferredAppGroupType": "Desktop",
            "startVMOnConnect": false,
            "publicNetworkAccess": "Enabled",
            "applicationGroupReferences": []
        }
    }));
    let total_weight: u32 = p.versions.iter().map(|(_, w)| w).sum();
    let now = clock.start();
    let domain = "corp.contoso.com";
    for i in 0..p.hosts {
        let vm_name = format!("{}-{:03}", p.prefix, i + 1);
        let fqdn = format!("{vm_name}.{domain}");
        let vm_id = format!("{rg_id}/providers/Microsoft.Compute/virtualMachines/{vm_name}");
        let nic_id = format!("{rg_id}/providers/Microsoft.Network/networkInterfaces/{vm_name}-nic");
        let mut pick = rng.random_range(0..total_weight);
        let mut version_index = p.versions[0].0;
        for (vi, w) in &p.versions {
            if pick < *w {
                version_index = *vi;
                break;
            }
            pick -= w;
        }
        let image_id = &version_ids[version_index];
        let vm_guid = guid(rng);
        t.insert(json!({
            "id": vm_id,
            "name": vm_name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": p.location,
            "tags": {"ringmaster-ring": p.ring.unwrap_or(""), "avd-host-pool": p.name},
            "properties": {
                "vmId": vm_guid,
                "hardwareProfile": {"vmSize": "Standard_D8s_v5"},
                "storageProfile": {
                    "imageReference": {"id": image_id},
                    "osDisk": {
                        "osType": "Windows",
                        "name": format!("{vm_name}-osdisk"),
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "managedDisk": {"storageAccountType": "Premium_LRS", "id": format!("{rg_id}/providers/Microsoft.Compute/disks/{vm_name}-osdisk")},
                        "diskSizeGB": 128,
                        "deleteOption": "Delete"
                    },
                    "dataDisks": []
                },
                "osProfile": {
                    "computerName": vm_name,
                    "adminUsername": "rmadmin",
                    "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": false},
                    "secrets": [],
                    "allowExtensionOperations": true
                },
                "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
                "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]},
                "licenseType": "Windows_Client",
                "provisioningState": "Succeeded",
                "timeCreated": rfc3339(now - Duration::from_secs(86400 * 3))
            }
        }));
        // A few hosts are unhealthy or draining; Test hosts carry no users.
        let roll: u32 = rng.random_range(0..100);
        let (status, allow) = match roll {
            0..=3 => ("Unavailable", true),
            4..=5 => ("NoHeartbeat", true),
            6..=10 => ("Available", false),
            _ => ("Available", true),
        };
        let sessions: u32 = if status == "Available" && p.ring != Some("test") { rng.random_range(0..8) } else { 0 };
        let heartbeat = if status == "NoHeartbeat" {
            now - Duration::from_secs(60 * 47)
        } else {
            now - Duration::from_secs(rng.random_range(5..50))
        };
        let mut checks = vec![
            check("DomainJoinedCheck", true),
            check("SxSStackListenerCheck", true),
            check("UrlsAccessibleCheck", true),
        ];
        checks.push(check("FSLogixHealthCheck", status != "Unavailable"));
        let sh_id = format!("{hp_id}/sessionHosts/{fqdn}");
        t.insert(json!({
            "id": sh_id,
            "name": format!("{}/{fqdn}", p.name),
            "type": "Microsoft.DesktopVirtualization/hostpools/sessionhosts",
            "properties": {
                "objectId": guid(rng),
                "lastHeartBeat": rfc3339(heartbeat),
                "sessions": sessions,
                "agentVersion": "1.0.10286.1000",
                "allowNewSession": allow,
                "virtualMachineId": vm_guid,
                "resourceId": vm_id,
                "status": status,
                "statusTimestamp": rfc3339(heartbeat),
                "osVersion": "10.0.26100",
                "sxSStackVersion": "rdp-sxs250910001",
                "updateState": "Succeeded",
                "lastUpdateTime": rfc3339(now - Duration::from_secs(86400 * 2)),
                "updateErrorMessage": "",
                "sessionHostHealthCheckResults": checks
            }
        }));
        for s in 0..sessions {
            let user = USERS[rng.random_range(0..USERS.len())];
            let session_id = s + 1;
            t.insert(json!({
                "id": format!("{sh_id}/userSessions/{session_id}"),
                "name": format!("{}/{fqdn}/{session_id}", p.name),
                "type": "Microsoft.DesktopVirtualization/hostpools/sessionhosts/usersessions",
                "properties": {
                    "objectId": guid(rng),
                    "userPrincipalName": format!("{user}@contoso.com"),
                    "applicationType": "Desktop",
                    "sessionState": if rng.random_range(0..5) == 0 { "Disconnected" } else { "Active" },
                    "activeDirectoryUserName": format!("CONTOSO\\{user}"),
                    "createTime": rfc3339(now - Duration::from_secs(rng.random_range(300..28800)))
                }
            }));
        }
    }
}

fn check(name: &str, ok: bool) -> Value {
    json!({
        "healthCheckName": name,
        "healthCheckResult": if ok { "HealthCheckSucceeded" } else { "HealthCheckFailed" },
        "additionalFailureDetails": {
            "message": if ok { "" } else { "The health check failed on the session host." },
            "errorCode": if ok { 0 } else { -2147467259 },
            "lastHealthCheckDateTime": "2026-11-27T03:00:00Z"
        }
    })
}
