//! The golden master and its non-destructive capture, driven over HTTPS against the simulated tenant with every
//! request and response checked against the Azure specs: snapshot → disk → temporary VM → Sysprep by run command →
//! generalize → gallery image version, plus managed run commands on their own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const GALLERY: &str = "2024-03-03";
const GRAPH: &str = "2024-04-01";
const BUILD_RG: &str = "rg-avd-build";
const SYSPREP: &str = "& $env:windir\\System32\\Sysprep\\Sysprep.exe /generalize /oobe /shutdown /mode:vm";

fn build(path: &str) -> String {
    format!("/subscriptions/{SUB_SHARED}/resourceGroups/{BUILD_RG}/providers/{path}")
}

fn master() -> String {
    build("Microsoft.Compute/virtualMachines/vm-golden-w11")
}

fn capture_subnet() -> String {
    build("Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/snet-capture")
}

fn image_version(version: &str) -> String {
    format!("/subscriptions/{SUB_SHARED}/resourceGroups/rg-avd-images/providers/Microsoft.Compute/galleries/gal_avd_contoso/images/win11-24h2-avd-m365/versions/{version}")
}

fn capture_tags() -> Value {
    json!({"ringmaster-capture": "2026.1204.1"})
}

/// The temporary resources of one capture.
struct Temp {
    snapshot: String,
    disk: String,
    nic: String,
    vm: String,
}

async fn done(sim: &Sim, r: &Resp) -> Resp {
    assert!((200..=202).contains(&r.status), "{} {}", r.status, r.body);
    let end = sim.wait_lro(r).await;
    assert_eq!(end.body["status"], "Succeeded", "{}", end.body);
    end
}

/// Copy the master's OS disk into a running VM on the capture subnet, the way the app does.
async fn temp_vm(sim: &Sim, name: &str) -> Temp {
    let master_vm = sim.get(&master(), COMPUTE).await.body;
    let os_disk =
        master_vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap().to_string();
    let snapshot = build(&format!("Microsoft.Compute/snapshots/{name}-snap"));
    let r = sim
        .put(
            &snapshot,
            DISK,
            &json!({
                "location": "westeurope",
                "tags": capture_tags(),
                "sku": {"name": "Standard_LRS"},
                "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": os_disk}, "incremental": false}
            }),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Updating");
    done(sim, &r).await;

    let disk = build(&format!("Microsoft.Compute/disks/{name}-osdisk"));
    let r = sim
        .put(
            &disk,
            DISK,
            &json!({
                "location": "westeurope",
                "tags": capture_tags(),
                "sku": {"name": "Premium_LRS"},
                "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": snapshot}, "osType": "Windows", "hyperVGeneration": "V2"}
            }),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    done(sim, &r).await;

    let nic = build(&format!("Microsoft.Network/networkInterfaces/{name}-nic"));
    let r = sim
        .put(
            &nic,
            NETWORK,
            &json!({
                "location": "westeurope",
                "tags": capture_tags(),
                "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": capture_subnet()}, "privateIPAllocationMethod": "Dynamic"}}]}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    done(sim, &r).await;

    let vm = build(&format!("Microsoft.Compute/virtualMachines/{name}"));
    let r = sim.put(&vm, COMPUTE, &attach_body(&disk, &nic)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    done(sim, &r).await;
    Temp { snapshot, disk, nic, vm }
}

fn attach_body(disk: &str, nic: &str) -> Value {
    json!({
        "location": "westeurope",
        "tags": capture_tags(),
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Windows", "managedDisk": {"id": disk}, "deleteOption": "Delete"}},
            "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": true, "deleteOption": "Delete"}}]},
            "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}}
        }
    })
}

fn run_body(script: &str, asynchronous: bool) -> Value {
    json!({"location": "westeurope", "properties": {"source": {"script": script}, "asyncExecution": asynchronous}})
}

async fn statuses(sim: &Sim, vm: &str) -> Vec<String> {
    let v = sim.get(&format!("{vm}/instanceView"), COMPUTE).await;
    assert_eq!(v.status, 200, "{}", v.body);
    v.body["statuses"].as_array().unwrap().iter().map(|s| s["code"].as_str().unwrap().to_string()).collect()
}

async fn wait_power(sim: &Sim, vm: &str, power: &str) {
    let code = format!("PowerState/{power}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !statuses(sim, vm).await.contains(&code) {
        assert!(Instant::now() < deadline, "{vm} never reached {code}: {:?}", statuses(sim, vm).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run a script and wait until it ended; returns the run command with its instance view.
async fn run_to_end(sim: &Sim, vm: &str, name: &str, body: &Value) -> Value {
    let rc = format!("{vm}/runCommands/{name}");
    let r = sim.put(&rc, COMPUTE, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    done(sim, &r).await;
    sim.wait_for(&format!("{rc}?$expand=instanceView"), COMPUTE, Duration::from_secs(15), |r| {
        !matches!(r.body["properties"]["instanceView"]["executionState"].as_str(), Some("Pending" | "Running"))
    })
    .await
    .body
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

async fn usage(sim: &Sim, name: &str) -> (u64, u64) {
    let r = sim
        .get(&format!("/subscriptions/{SUB_SHARED}/providers/Microsoft.Compute/locations/westeurope/usages"), COMPUTE)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = r.body["value"].as_array().unwrap().iter().find(|u| u["name"]["value"] == name).cloned().unwrap();
    (u["currentValue"].as_u64().unwrap(), u["limit"].as_u64().unwrap())
}

#[tokio::test]
async fn the_full_capture_leaves_the_master_untouched_and_nothing_behind() {
    // 3000x: a sim-minute is 20 real milliseconds.
    let sim = Sim::start(3000.0).await;

    // The master, found by its tag like any VM.
    let q = json!({
        "subscriptions": [SUB_SHARED],
        "query": "resources | where type =~ 'microsoft.compute/virtualmachines' and isnotempty(tags['ringmaster-golden-master']) | project id, definition = tostring(tags['ringmaster-golden-master'])",
        "options": {"resultFormat": "objectArray"}
    });
    let found = sim.post("/providers/Microsoft.ResourceGraph/resources", GRAPH, Some(&q)).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["data"].as_array().unwrap().len(), 1, "{}", found.body);
    assert_eq!(found.body["data"][0]["id"], master().as_str());
    assert_eq!(found.body["data"][0]["definition"], "win11-24h2-avd-m365");
    let m = sim.get(&master(), COMPUTE).await.body;
    assert_eq!(m["properties"]["hardwareProfile"]["vmSize"], "Standard_D4s_v5");
    assert_eq!(m["properties"]["securityProfile"]["securityType"], "TrustedLaunch");
    let nic = m["properties"]["networkProfile"]["networkInterfaces"][0]["id"].as_str().unwrap();
    let subnet =
        sim.get(nic, NETWORK).await.body["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"].clone();
    assert_eq!(subnet, build("Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/snet-golden").as_str());
    let os_disk = m["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap().to_string();
    let disk = sim.get(&os_disk, DISK).await.body;
    assert_eq!(disk["managedBy"], master().as_str());
    assert_eq!(
        (disk["properties"]["diskSizeGB"].as_u64(), disk["sku"]["name"].as_str()),
        (Some(128), Some("Premium_LRS"))
    );
    assert_eq!(
        (disk["properties"]["osType"].as_str(), disk["properties"]["hyperVGeneration"].as_str()),
        (Some("Windows"), Some("V2"))
    );
    assert!(statuses(&sim, &master()).await.contains(&"PowerState/running".to_string()));
    // 2 admin hosts (D8s_v5) and the master (D4s_v5) in West Europe.
    assert_eq!(usage(&sim, "cores").await, (20, 350));
    assert_eq!(usage(&sim, "standardDSv5Family").await, (20, 200));

    // A snapshot of a disk that does not exist: ARM's 404.
    let missing = sim
        .put(
            &build("Microsoft.Compute/snapshots/nope"),
            DISK,
            &json!({"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": build("Microsoft.Compute/disks/no-such-disk")}}}),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"), "{}", missing.body);

    let t = temp_vm(&sim, "vm-cap-1204").await;
    let snap = sim.get(&t.snapshot, DISK).await.body;
    assert_eq!(snap["properties"]["provisioningState"], "Succeeded");
    assert_eq!(snap["properties"]["osType"], "Windows");
    assert_eq!(snap["properties"]["hyperVGeneration"], "V2");
    assert_eq!(snap["properties"]["diskSizeGB"], 128);
    assert_eq!(snap["properties"]["securityProfile"]["securityType"], "TrustedLaunch");
    assert_eq!(snap["properties"]["creationData"]["sourceResourceId"], os_disk.as_str());
    let copy = sim.get(&t.disk, DISK).await.body;
    assert_eq!(copy["managedBy"], t.vm.as_str(), "the temporary VM boots from the copy");
    assert_eq!(copy["properties"]["securityProfile"]["securityType"], "TrustedLaunch");
    let vm = sim.get(&t.vm, COMPUTE).await.body;
    assert_eq!(vm["properties"]["storageProfile"]["osDisk"]["createOption"], "Attach");
    assert_eq!(vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"], t.disk.as_str());
    assert!(statuses(&sim, &t.vm).await.contains(&"PowerState/running".to_string()));
    assert_eq!(usage(&sim, "cores").await.0, 24);
    let leftovers = strings(&sim.stats().await["captureLeftovers"]);
    for id in [&t.snapshot, &t.disk, &t.nic, &t.vm] {
        assert!(leftovers.contains(id), "{id} counted: {leftovers:?}");
    }
    // A disk attached to one VM cannot boot another.
    let nic3 = build("Microsoft.Network/networkInterfaces/vm-cap-twice-nic");
    let r = sim
        .put(&nic3, NETWORK, &json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": capture_subnet()}}}]}}))
        .await;
    done(&sim, &r).await;
    let twice =
        sim.put(&build("Microsoft.Compute/virtualMachines/vm-cap-twice"), COMPUTE, &attach_body(&t.disk, &nic3)).await;
    assert_eq!((twice.status, twice.code()), (409, "OperationNotAllowed"), "{}", twice.body);
    let d = sim.delete(&nic3, NETWORK).await;
    assert_eq!(sim.wait_lro(&d).await.status, 200);

    // Sysprep in the copy; the guest shuts down by itself.
    let rc = run_to_end(&sim, &t.vm, "sysprep", &run_body(SYSPREP, true)).await;
    let view = &rc["properties"]["instanceView"];
    assert_eq!(view["executionState"], "Succeeded", "{view}");
    assert_eq!(view["exitCode"], 0);
    wait_power(&sim, &t.vm, "stopped").await;
    let d = sim.post(&format!("{}/deallocate", t.vm), COMPUTE, None).await;
    assert_eq!(d.status, 202, "deallocate works from stopped: {}", d.body);
    done(&sim, &d).await;
    let g = sim.post(&format!("{}/generalize", t.vm), COMPUTE, None).await;
    assert_eq!(g.status, 200, "{}", g.body);
    let s = statuses(&sim, &t.vm).await;
    assert!(
        s.contains(&"OSState/generalized".to_string()) && s.contains(&"PowerState/deallocated".to_string()),
        "{s:?}"
    );
    let start = sim.post(&format!("{}/start", t.vm), COMPUTE, None).await;
    assert_eq!((start.status, start.code()), (409, "OperationNotAllowed"), "a generalized VM does not start");

    // The image version, captured from the VM.
    let version = image_version("2026.1204.1");
    let body = json!({
        "location": "westeurope",
        "tags": {"ringmaster-release": "2026.1204.1"},
        "properties": {
            "publishingProfile": {
                "targetRegions": [
                    {"name": "westeurope", "regionalReplicaCount": 2, "storageAccountType": "Standard_ZRS", "excludeFromLatest": false},
                    {"name": "northeurope", "regionalReplicaCount": 1}
                ],
                "replicaCount": 1,
                "excludeFromLatest": true,
                "endOfLifeDate": "2027-06-30T00:00:00Z"
            },
            "storageProfile": {"source": {"virtualMachineId": t.vm}},
            "safetyProfile": {"allowDeletionOfReplicatedLocations": false}
        }
    });
    let v = sim.put(&version, GALLERY, &body).await;
    assert_eq!(v.status, 201, "{}", v.body);
    assert_eq!(v.body["properties"]["provisioningState"], "Creating");
    let again = sim.put(&version, GALLERY, &body).await;
    assert_eq!(again.status, 200, "the same PUT again: {}", again.body);
    assert_eq!(again.header("azure-asyncoperation"), v.header("azure-asyncoperation"));
    let early = sim.get(&format!("{version}?$expand=ReplicationStatus"), GALLERY).await;
    assert_eq!(early.body["properties"]["replicationStatus"]["aggregatedState"], "InProgress");
    done(&sim, &v).await;
    let v = sim.get(&version, GALLERY).await.body;
    let p = &v["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["publishingProfile"]["excludeFromLatest"], true);
    assert_eq!(p["publishingProfile"]["endOfLifeDate"], "2027-06-30T00:00:00Z");
    assert_eq!(p["publishingProfile"]["replicaCount"], 1);
    let regions = p["publishingProfile"]["targetRegions"].as_array().unwrap();
    assert_eq!(regions[0]["name"], "West Europe");
    assert_eq!(
        (regions[0]["regionalReplicaCount"].as_u64(), regions[0]["storageAccountType"].as_str()),
        (Some(2), Some("Standard_ZRS"))
    );
    assert_eq!(regions[1]["regionalReplicaCount"], 1);
    assert_eq!(p["storageProfile"]["source"]["virtualMachineId"], t.vm.as_str());
    assert_eq!(p["storageProfile"]["osDiskImage"]["sizeInGB"], 128);
    let replicated = sim
        .wait_for(&format!("{version}?$expand=ReplicationStatus"), GALLERY, Duration::from_secs(15), |r| {
            r.body["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
        })
        .await;
    let summary = replicated.body["properties"]["replicationStatus"]["summary"].as_array().unwrap().clone();
    assert!(summary.iter().all(|s| s["state"] == "Completed" && s["progress"] == 100), "{summary:?}");

    // Clean up: the VM takes its disk and NIC (deleteOption Delete), then the snapshot goes.
    let d = sim.delete(&t.vm, COMPUTE).await;
    done(&sim, &d).await;
    assert_eq!(sim.get(&t.disk, DISK).await.status, 404, "the copy went with the VM");
    assert_eq!(sim.get(&t.nic, NETWORK).await.status, 404, "the NIC went with the VM");
    let d = sim.delete(&t.snapshot, DISK).await;
    assert_eq!(d.status, 202, "{}", d.body);
    assert_eq!(sim.wait_lro(&d).await.body["status"], "Succeeded");
    assert_eq!(sim.get(&t.snapshot, DISK).await.status, 404);
    assert_eq!(sim.delete(&t.snapshot, DISK).await.status, 204, "deleting what is gone");
    // The version outlives its source.
    assert_eq!(sim.get(&version, GALLERY).await.body["properties"]["provisioningState"], "Succeeded");

    let stats = sim.stats().await;
    assert!(strings(&stats["masterViolations"]).is_empty(), "{}", stats["masterViolations"]);
    assert!(strings(&stats["captureLeftovers"]).is_empty(), "{}", stats["captureLeftovers"]);
    assert!(strings(&stats["orphans"]).is_empty(), "{}", stats["orphans"]);
    assert!(statuses(&sim, &master()).await.contains(&"PowerState/running".to_string()));
    assert_eq!(usage(&sim, "cores").await.0, 20);
    for op in [
        "Snapshots_CreateOrUpdate",
        "Disks_CreateOrUpdate",
        "VirtualMachines_Generalize",
        "GalleryImageVersions_CreateOrUpdate",
        "Usage_List",
        "VirtualMachineRunCommands_CreateOrUpdate",
    ] {
        assert!(stats["requestsByOperation"][op].as_u64().unwrap_or(0) > 0, "{op} counted");
    }

    let d = sim.delete(&version, GALLERY).await;
    assert_eq!(d.status, 202);
    assert_eq!(sim.wait_lro(&d).await.body["status"], "Succeeded");
    assert_eq!(sim.get(&version, GALLERY).await.status, 404);
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn run_commands_stream_their_output_queue_time_out_and_truncate() {
    // 100x: a sim-minute is 0.6 real seconds.
    let sim = Sim::start(100.0).await;
    let vm = master();
    let rc = |name: &str| format!("{vm}/runCommands/{name}");
    let script = "param($Name)\nWrite-Output \"hello $Name\"\nStart-Sleep -Seconds 60\nWrite-Output 'step 2'\nStart-Sleep -Seconds 60\nWrite-Output 'step 3'";
    let mut body = run_body(script, true);
    body["properties"]["parameters"] = json!([{"name": "Name", "value": "Ringmaster"}]);
    body["properties"]["protectedParameters"] = json!([{"name": "Secret", "value": "s3cr3t"}]);
    let r = sim.put(&rc("stream"), COMPUTE, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.header("azure-asyncoperation").is_some() && r.header("location").is_some());
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    assert!(!r.body.to_string().contains("s3cr3t"), "protected parameters are never returned");
    // Queued behind it: a synchronous one that fails with exit code 3.
    let second = sim
        .put(&rc("second"), COMPUTE, &run_body("Write-Output 'second'\nWrite-Error 'it went wrong'\nexit 3", false))
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    // The async PUT completes when its script starts.
    done(&sim, &r).await;

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let g = sim.get(&format!("{}?$expand=instanceView", rc("stream")), COMPUTE).await;
        let view = g.body["properties"]["instanceView"].clone();
        let state = view["executionState"].as_str().unwrap().to_string();
        if state == "Running" {
            seen.push(view["output"].as_str().unwrap().to_string());
            let other = sim.get(&format!("{}?$expand=instanceView", rc("second")), COMPUTE).await;
            assert_eq!(other.body["properties"]["instanceView"]["executionState"], "Pending", "one script at a time");
        }
        if state == "Succeeded" {
            assert_eq!(view["output"], "hello Ringmaster\nstep 2\nstep 3");
            assert_eq!(view["exitCode"], 0);
            assert_eq!(view["error"], "");
            assert!(view["startTime"].is_string() && view["endTime"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "the script never ended: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.iter().any(|o| o == "hello Ringmaster"), "the first line streamed before the rest: {seen:?}");
    assert!(seen.iter().any(|o| o == "hello Ringmaster\nstep 2"), "{seen:?}");

    // The synchronous PUT ends with its script; a non-zero exit is a failed execution, not a failed deployment.
    let end = sim.wait_lro(&second).await;
    assert_eq!(end.body["status"], "Succeeded", "{}", end.body);
    let g = sim.get(&format!("{}?$expand=instanceView", rc("second")), COMPUTE).await;
    let view = &g.body["properties"]["instanceView"];
    assert_eq!((view["executionState"].as_str(), view["exitCode"].as_i64()), (Some("Failed"), Some(3)), "{view}");
    assert_eq!(view["output"], "second");
    assert_eq!(view["error"], "it went wrong");
    assert!(!view["executionMessage"].as_str().unwrap().is_empty());
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");

    // treatFailureAsDeploymentFailure: the failure fails the PUT and the provisioning state.
    let mut strict = run_body("exit 2", false);
    strict["properties"]["treatFailureAsDeploymentFailure"] = json!(true);
    let r = sim.put(&rc("strict"), COMPUTE, &strict).await;
    let end = sim.wait_lro(&r).await;
    assert_eq!(end.body["status"], "Failed", "{}", end.body);
    assert_eq!(sim.get(&rc("strict"), COMPUTE).await.body["properties"]["provisioningState"], "Failed");

    // A hung script times out; what it printed before stays.
    let mut hang = run_body("Write-Output 'before'\n# sim:hang\nWrite-Output 'after'", true);
    hang["properties"]["timeoutInSeconds"] = json!(30);
    let rc_hang = run_to_end(&sim, &vm, "hang", &hang).await;
    let view = &rc_hang["properties"]["instanceView"];
    assert_eq!(view["executionState"], "TimedOut", "{view}");
    assert_eq!(view["output"], "before");
    let (start, end) = (view["startTime"].as_str().unwrap(), view["endTime"].as_str().unwrap());
    let secs = time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339).unwrap()
        - time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(secs.whole_seconds(), 30, "ended by its timeout");

    // Long output keeps its last 4,096 bytes.
    let rc_long = run_to_end(&sim, &vm, "long", &run_body("# sim:output-lines 1000", true)).await;
    let out = rc_long["properties"]["instanceView"]["output"].as_str().unwrap();
    assert!(out.len() <= 4096 && out.len() > 4000, "{}", out.len());
    assert!(out.ends_with("line 1000 of 1000") && !out.contains("line 1 of 1000\n"));

    // The same PUT again does not run the script again.
    let same = sim.put(&rc("long"), COMPUTE, &run_body("# sim:output-lines 1000", true)).await;
    assert_eq!(same.status, 200);
    let again = sim.get(&format!("{}?$expand=instanceView", rc("long")), COMPUTE).await;
    assert_eq!(again.body["properties"]["instanceView"]["executionState"], "Succeeded");

    let list = sim.get(&format!("{vm}/runCommands?$expand=instanceView"), COMPUTE).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names: Vec<&str> = list.body["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hang", "long", "second", "stream", "strict"]);
    assert!(list.body["value"].as_array().unwrap().iter().all(|r| r["properties"]["instanceView"].is_object()));
    for name in names {
        let d = sim.delete(&rc(name), COMPUTE).await;
        assert_eq!(d.status, 202, "{}", d.body);
        assert_eq!(sim.wait_lro(&d).await.body["status"], "Succeeded");
        assert_eq!(sim.get(&rc(name), COMPUTE).await.status, 404);
    }
    assert_eq!(sim.delete(&rc("stream"), COMPUTE).await.status, 204);
    let stats = sim.stats().await;
    assert!(
        strings(&stats["masterViolations"]).is_empty(),
        "scripts without Sysprep are fine: {}",
        stats["masterViolations"]
    );
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn generalize_and_capture_wait_for_sysprep_and_generalize() {
    let sim = Sim::start(3000.0).await;
    let t = temp_vm(&sim, "vm-cap-early").await;
    let version = image_version("2026.1205.1");
    let body = |vm: &str| json!({"location": "westeurope", "properties": {"storageProfile": {"source": {"virtualMachineId": vm}}, "publishingProfile": {"targetRegions": [{"name": "westeurope"}]}}});

    let g = sim.post(&format!("{}/generalize", t.vm), COMPUTE, None).await;
    assert_eq!((g.status, g.code()), (409, "OperationNotAllowed"), "{}", g.body);
    assert!(g.body["error"]["message"].as_str().unwrap().contains("running"), "{}", g.body);
    let v = sim.put(&version, GALLERY, &body(&t.vm)).await;
    assert_eq!((v.status, v.code()), (400, "InvalidParameter"), "{}", v.body);
    assert!(v.body["error"]["message"].as_str().unwrap().contains("generalized"), "{}", v.body);
    assert_eq!(sim.get(&version, GALLERY).await.status, 404, "a refused PUT leaves nothing");
    let bad_name = sim.put(&image_version("1.0"), GALLERY, &body(&t.vm)).await;
    assert_eq!((bad_name.status, bad_name.code()), (400, "InvalidParameter"), "{}", bad_name.body);
    let no_vm = sim.put(&version, GALLERY, &body(&build("Microsoft.Compute/virtualMachines/no-such-vm"))).await;
    assert_eq!(no_vm.status, 400, "{}", no_vm.body);

    // Stopped but never sysprepped: still refused. A stopped VM takes no run commands.
    let off = sim.post(&format!("{}/powerOff", t.vm), COMPUTE, None).await;
    done(&sim, &off).await;
    assert!(statuses(&sim, &t.vm).await.contains(&"PowerState/stopped".to_string()));
    let g = sim.post(&format!("{}/generalize", t.vm), COMPUTE, None).await;
    assert_eq!((g.status, g.code()), (409, "OperationNotAllowed"), "{}", g.body);
    assert!(g.body["error"]["message"].as_str().unwrap().contains("sysprep"), "{}", g.body);
    let rc = sim.put(&format!("{}/runCommands/late", t.vm), COMPUTE, &run_body(SYSPREP, true)).await;
    assert_eq!((rc.status, rc.code()), (409, "OperationNotAllowed"), "{}", rc.body);

    // Sysprep, generalize, capture, and delete the source before the version is created: the version fails.
    let s = sim.post(&format!("{}/start", t.vm), COMPUTE, None).await;
    done(&sim, &s).await;
    let rc = run_to_end(&sim, &t.vm, "sysprep", &run_body(SYSPREP, false)).await;
    assert_eq!(rc["properties"]["instanceView"]["executionState"], "Succeeded");
    wait_power(&sim, &t.vm, "stopped").await;
    assert_eq!(sim.post(&format!("{}/generalize", t.vm), COMPUTE, None).await.status, 200, "generalize from stopped");
    let v = sim.put(&version, GALLERY, &body(&t.vm)).await;
    assert_eq!(v.status, 201, "{}", v.body);
    let changed = sim.put(&version, GALLERY, &body(&master())).await;
    assert_eq!((changed.status, changed.code()), (409, "PropertyChangeNotAllowed"), "{}", changed.body);
    let d = sim.delete(&t.vm, COMPUTE).await;
    done(&sim, &d).await;
    let end = sim.wait_lro(&v).await;
    assert_eq!(end.body["status"], "Failed", "{}", end.body);
    let failed = sim.get(&format!("{version}?$expand=ReplicationStatus"), GALLERY).await.body;
    assert_eq!(failed["properties"]["provisioningState"], "Failed");
    assert_eq!(failed["properties"]["replicationStatus"]["aggregatedState"], "Failed");
    let d = sim.delete(&version, GALLERY).await;
    sim.wait_lro(&d).await;
    assert_eq!(sim.get(&t.nic, NETWORK).await.status, 404, "the NIC went with the VM");
    let d = sim.delete(&t.snapshot, DISK).await;
    sim.wait_lro(&d).await;
    let stats = sim.stats().await;
    assert!(strings(&stats["captureLeftovers"]).is_empty(), "{}", stats["captureLeftovers"]);
    assert!(strings(&stats["masterViolations"]).is_empty(), "{}", stats["masterViolations"]);
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn a_failing_sysprep_leaves_the_vm_running_and_not_sysprepped() {
    let sim = Sim::start(3000.0).await;
    sim.faults(json!({"sysprepFails": ["cap-fail"]})).await;
    let t = temp_vm(&sim, "vm-cap-fail").await;
    let rc = run_to_end(&sim, &t.vm, "sysprep", &run_body(SYSPREP, false)).await;
    let view = &rc["properties"]["instanceView"];
    assert_eq!((view["executionState"].as_str(), view["exitCode"].as_i64()), (Some("Failed"), Some(1)), "{view}");
    assert!(view["error"].as_str().unwrap().contains("setupact.log"), "{view}");
    sim.sleep_until(sim.now().await + time::Duration::minutes(5)).await;
    assert!(statuses(&sim, &t.vm).await.contains(&"PowerState/running".to_string()), "the VM did not shut down");
    let off = sim.post(&format!("{}/powerOff", t.vm), COMPUTE, None).await;
    done(&sim, &off).await;
    let g = sim.post(&format!("{}/generalize", t.vm), COMPUTE, None).await;
    assert_eq!((g.status, g.code()), (409, "OperationNotAllowed"), "not sysprepped: {}", g.body);
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn sysprep_on_the_master_is_a_violation() {
    let sim = Sim::start(3000.0).await;
    assert!(strings(&sim.stats().await["masterViolations"]).is_empty());
    let rc = run_to_end(&sim, &master(), "oops", &run_body(SYSPREP, true)).await;
    assert_eq!(rc["properties"]["instanceView"]["executionState"], "Succeeded");
    wait_power(&sim, &master(), "stopped").await;
    let violations = strings(&sim.stats().await["masterViolations"]);
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].starts_with(&master()) && violations[0].contains("sysprep"), "{violations:?}");
    assert!(violations[1].contains("stopped"), "{violations:?}");
    let d = sim.post(&format!("{}/deallocate", master()), COMPUTE, None).await;
    done(&sim, &d).await;
    let violations = strings(&sim.stats().await["masterViolations"]);
    assert!(violations.last().unwrap().contains("deallocated"), "{violations:?}");
    assert_eq!(usage(&sim, "cores").await.0, 16, "a deallocated VM holds no vCPUs");
    // Tagging the master's OS disk is harmless; growing it is a change to the master.
    let os_disk = sim.get(&master(), COMPUTE).await.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let disk = sim.get(&os_disk, DISK).await.body;
    let mut body = json!({"location": "westeurope", "tags": {"owner": "euc"}, "properties": {"creationData": disk["properties"]["creationData"]}});
    let r = sim.put(&os_disk, DISK, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    done(&sim, &r).await;
    assert_eq!(strings(&sim.stats().await["masterViolations"]).len(), 3);
    body["properties"]["diskSizeGB"] = json!(256);
    let r = sim.put(&os_disk, DISK, &body).await;
    done(&sim, &r).await;
    assert_eq!(sim.get(&os_disk, DISK).await.body["properties"]["diskSizeGB"], 256);
    let violations = strings(&sim.stats().await["masterViolations"]);
    assert!(violations.last().unwrap().contains("OS disk"), "{violations:?}");
    let stats = sim.control(Method::GET, "/_sim/stats", None).await;
    assert!(stats["captureLeftovers"].as_array().unwrap().is_empty());
    sim.assert_no_spec_violations().await;
}
