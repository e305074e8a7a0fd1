//! The operations a session host replacement uses, driven over HTTPS against the simulated tenant with every
//! request and response checked against the Azure specs.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

const TEST_POOL_RG: &str = "rg-avd-test";
const PILOT_RG: &str = "rg-avd-pilot";

fn expires_in(now: time::OffsetDateTime, d: time::Duration) -> String {
    (now + d).format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn registration_tokens_are_issued_retrieved_renewed_and_revoked() {
    let sim = Sim::start(1.0).await;
    let hp = pool(TEST_POOL_RG, "hp-test-weu");
    let retrieve = format!("{hp}/retrieveRegistrationToken");

    let none = sim.post(&retrieve, AVD, None).await;
    assert_eq!(none.status, 200);
    assert!(none.body.get("token").is_none(), "no token before one is issued: {}", none.body);

    // The service's clock is in the Date header (and in /_sim/stats).
    let first = sim.get(&hp, AVD).await;
    let date = first.header("date").expect("Date header");
    assert!(date.ends_with(" GMT"), "{date}");

    let now = sim.now().await;
    for bad in [time::Duration::minutes(30), time::Duration::days(31), time::Duration::hours(-2)] {
        let body = json!({"properties": {"registrationInfo": {"expirationTime": expires_in(now, bad), "registrationTokenOperation": "Update"}}});
        let r = sim.patch(&hp, AVD, &body).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("1 hour"), "{}", r.body);
    }
    let missing = sim
        .patch(&hp, AVD, &json!({"properties": {"registrationInfo": {"registrationTokenOperation": "Update"}}}))
        .await;
    assert_eq!(missing.status, 400);

    let expiry = expires_in(now, time::Duration::hours(8));
    let body =
        json!({"properties": {"registrationInfo": {"expirationTime": expiry, "registrationTokenOperation": "Update"}}});
    let issued = sim.patch(&hp, AVD, &body).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.body["name"], "hp-test-weu", "the PATCH answer is the host pool");
    let token = issued.body["properties"]["registrationInfo"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "JWT-looking: {token}");

    let read = sim.get(&hp, AVD).await;
    assert!(read.body["properties"]["registrationInfo"].get("token").is_none(), "GET never shows the token");
    assert_eq!(read.body["properties"]["registrationInfo"]["registrationTokenOperation"], "Update");

    let got = sim.post(&retrieve, AVD, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["token"], token.as_str());
    assert_eq!(got.body["registrationTokenOperation"], "Update");
    let exp = time::OffsetDateTime::parse(got.body["expirationTime"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(exp.unix_timestamp(), time::OffsetDateTime::parse(&expiry, &Rfc3339).unwrap().unix_timestamp());

    let list = sim.post(&format!("{hp}/listRegistrationTokens"), AVD, None).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["value"][0]["token"], token.as_str());

    let renewed = sim.issue_token(&hp, 24).await;
    assert_ne!(renewed, token, "Update issues a new token");
    assert_eq!(sim.post(&retrieve, AVD, None).await.body["token"], renewed.as_str());

    let revoke = json!({"properties": {"registrationInfo": {"registrationTokenOperation": "Delete"}}});
    let r = sim.patch(&hp, AVD, &revoke).await;
    assert_eq!(r.status, 200);
    assert!(r.body["properties"]["registrationInfo"].get("token").is_none());
    let gone = sim.post(&retrieve, AVD, None).await;
    assert!(gone.body.get("token").is_none(), "{}", gone.body);
    assert!(sim.post(&format!("{hp}/listRegistrationTokens"), AVD, None).await.body["value"]
        .as_array()
        .unwrap()
        .is_empty());

    // Other properties and tags patch as sent.
    let r = sim
        .patch(
            &hp,
            AVD,
            &json!({"tags": {"ringmaster-ring": "test", "x": "y"}, "properties": {"friendlyName": "Test ring"}}),
        )
        .await;
    assert_eq!(r.body["properties"]["friendlyName"], "Test ring");
    assert_eq!(r.body["tags"]["x"], "y");
    sim.assert_no_spec_violations().await;
}

/// A host of hp-pilot-weu that is Available, accepting sessions and has users.
async fn busy_pilot_host(sim: &Sim) -> Value {
    let hp = pool(PILOT_RG, "hp-pilot-weu");
    let hosts = sim.get(&format!("{hp}/sessionHosts"), AVD).await;
    hosts.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            let p = &h["properties"];
            p["status"] == "Available" && p["allowNewSession"] == true && p["sessions"].as_u64().unwrap() >= 2
        })
        .cloned()
        .expect("a busy pilot host")
}

#[tokio::test]
async fn drain_message_and_log_off() {
    let sim = Sim::start(1.0).await;
    let host = busy_pilot_host(&sim).await;
    let host_id = host["id"].as_str().unwrap().to_string();
    let pool_id = pool(PILOT_RG, "hp-pilot-weu");
    let before = sim.stats().await["maxOutOfService"][&pool_id].as_u64().unwrap();

    let drained = sim.patch(&host_id, AVD, &json!({"properties": {"allowNewSession": false}})).await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    assert_eq!(drained.body["properties"]["allowNewSession"], false);
    assert_eq!(drained.body["id"], host_id.as_str());
    let after = sim.stats().await["maxOutOfService"][&pool_id].as_u64().unwrap();
    assert_eq!(after, before + 1, "one more host out of service");

    let sessions = sim.get(&format!("{host_id}/userSessions"), AVD).await.body["value"].as_array().unwrap().clone();
    assert_eq!(sessions.len() as u64, host["properties"]["sessions"].as_u64().unwrap());
    for s in &sessions {
        let r = sim
            .post(
                &format!("{}/sendMessage", s["id"].as_str().unwrap()),
                AVD,
                Some(&json!({"messageTitle": "Maintenance", "messageBody": "Please save your work and log off within 15 minutes."})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let messages = sim.control(Method::GET, "/_sim/messages", None).await;
    for s in &sessions {
        let m = &messages[s["id"].as_str().unwrap()];
        assert_eq!(m.as_array().unwrap().len(), 1, "{messages}");
        assert_eq!(m[0]["messageTitle"], "Maintenance");
    }

    // A host with users cannot be removed without force.
    let refused = sim.delete(&host_id, AVD).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    // Log one user off: the host's count follows.
    let first = sessions[0]["id"].as_str().unwrap();
    let r = sim.delete(&format!("{first}?force=true"), AVD).await;
    assert_eq!(r.status, 200);
    let h = sim.get(&host_id, AVD).await;
    assert_eq!(h.body["properties"]["sessions"].as_u64().unwrap(), sessions.len() as u64 - 1);
    assert_eq!(sim.get(first, AVD).await.status, 404);
    // A session that is gone: AVD answers 404.
    assert_eq!(sim.delete(&format!("{first}?force=true"), AVD).await.status, 404);
    let msg =
        sim.post(&format!("{first}/sendMessage"), AVD, Some(&json!({"messageTitle": "t", "messageBody": "b"}))).await;
    assert_eq!(msg.status, 404);

    // Undrain: accepting sessions again.
    let undrained = sim.patch(&host_id, AVD, &json!({"properties": {"allowNewSession": true}})).await;
    assert_eq!(undrained.body["properties"]["allowNewSession"], true);

    // Force removal takes the remaining sessions with it; the VM stays.
    let removed = sim.delete(&format!("{host_id}?force=true"), AVD).await;
    assert_eq!(removed.status, 200);
    assert_eq!(sim.get(&host_id, AVD).await.status, 404);
    assert_eq!(sim.get(host["properties"]["resourceId"].as_str().unwrap(), COMPUTE).await.status, 200);
    assert_eq!(sim.delete(&format!("{host_id}?force=true"), AVD).await.status, 204);
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn users_leave_drained_hosts_by_themselves_and_idle_drains_are_counted() {
    // 3000x: a sim-hour is 1.2 real seconds.
    let sim = Sim::start(3000.0).await;
    let host = busy_pilot_host(&sim).await;
    let host_id = host["id"].as_str().unwrap().to_string();
    let r = sim.patch(&host_id, AVD, &json!({"properties": {"allowNewSession": false}})).await;
    assert_eq!(r.status, 200);
    let drained_at = sim.now().await;
    // Every user is gone within 60 sim-minutes; the host's count stays equal to its sessions meanwhile.
    let empty = sim.wait_for(&host_id, AVD, Duration::from_secs(10), |r| r.body["properties"]["sessions"] == 0).await;
    assert_eq!(empty.body["properties"]["allowNewSession"], false);
    assert!(sim.get(&format!("{host_id}/userSessions"), AVD).await.body["value"].as_array().unwrap().is_empty());
    let now = sim.now().await;
    assert!(now - drained_at >= time::Duration::minutes(5), "users stay at least 5 sim-minutes");

    // Left drained and empty for over 30 sim-minutes: forgotten in drain.
    sim.sleep_until(now + time::Duration::minutes(65)).await;
    // ARM's Date header follows the sim clock.
    let date = date_header(&sim.get(&host_id, AVD).await);
    assert!(date >= now + time::Duration::minutes(65), "{date} vs {now}");
    let stats = sim.stats().await;
    let idle: Vec<&str> = stats["drainedIdle"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(idle, [host_id.as_str()], "only hosts drained through the API count");
    // Undrained: no longer forgotten.
    sim.patch(&host_id, AVD, &json!({"properties": {"allowNewSession": true}})).await;
    assert!(sim.stats().await["drainedIdle"].as_array().unwrap().is_empty());
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn a_session_host_is_replaced_from_a_new_image_version() {
    let sim = Sim::start(3000.0).await;
    let hp = pool(TEST_POOL_RG, "hp-test-weu");
    let hosts = sim.get(&format!("{hp}/sessionHosts"), AVD).await.body["value"].as_array().unwrap().clone();
    let healthy = |h: &&Value| h["properties"]["status"] == "Available" && h["properties"]["allowNewSession"] == true;
    let out_at_start = (4 - hosts.iter().filter(healthy).count()) as u64;
    let host = hosts.iter().find(healthy).expect("a healthy Test host").clone();
    let host_id = host["id"].as_str().unwrap().to_string();
    let vm_id = host["properties"]["resourceId"].as_str().unwrap().to_string();
    let vm_name = vm_id.rsplit('/').next().unwrap().to_string();
    assert_eq!(host_id, format!("{hp}/sessionHosts/{vm_name}.corp.contoso.com"));
    let old_vm = sim.get(&vm_id, COMPUTE).await.body;
    let nic_id = old_vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"].as_str().unwrap().to_string();
    let disk_id = old_vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap().to_string();
    assert_eq!(sim.get(&nic_id, NETWORK).await.body["properties"]["virtualMachine"]["id"], vm_id.as_str());
    assert_eq!(sim.get(&disk_id, DISK).await.body["managedBy"], vm_id.as_str());
    let baseline_out = sim.stats().await["maxOutOfService"][&hp].as_u64().unwrap();

    let token = sim.issue_token(&hp, 24).await;

    // Drain, remove the registration, delete the VM: its NIC and disk go with it (deleteOption Delete).
    assert_eq!(sim.patch(&host_id, AVD, &json!({"properties": {"allowNewSession": false}})).await.status, 200);
    assert_eq!(sim.delete(&format!("{host_id}?force=true"), AVD).await.status, 200);
    let nic_in_use = sim.delete(&nic_id, NETWORK).await;
    assert_eq!((nic_in_use.status, nic_in_use.code()), (400, "NicInUse"), "{}", nic_in_use.body);
    let del = sim.delete(&vm_id, COMPUTE).await;
    assert_eq!(del.status, 202);
    assert!(del.header("azure-asyncoperation").is_some() && del.header("location").is_some());
    assert_eq!(sim.get(&vm_id, COMPUTE).await.body["properties"]["provisioningState"], "Deleting");
    assert_eq!(sim.wait_lro(&del).await.body["status"], "Succeeded");
    assert_eq!(sim.get(&vm_id, COMPUTE).await.status, 404);
    assert_eq!(sim.get(&nic_id, NETWORK).await.status, 404, "NIC cascaded");
    assert_eq!(sim.get(&disk_id, DISK).await.status, 404, "OS disk cascaded");

    // New NIC, same name.
    let nic_body = json!({
        "location": "westeurope",
        "tags": {"avd-host-pool": "hp-test-weu"},
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": subnet(TEST_POOL_RG, "westeurope")}, "privateIPAllocationMethod": "Dynamic"
        }}]}
    });
    let created = sim.put(&nic_id, NETWORK, &nic_body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ip = created.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10."), "{ip}");
    assert!(created.body["properties"]["provisioningState"].is_string());
    assert_eq!(sim.wait_lro(&created).await.body["status"], "Succeeded");
    let nic_now = sim.get(&nic_id, NETWORK).await;
    assert_eq!(nic_now.body["properties"]["provisioningState"], "Succeeded");
    // Updating a NIC: 200, the IP stays.
    let updated = sim.put(&nic_id, NETWORK, &nic_body).await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"], ip.as_str());
    sim.wait_lro(&updated).await;

    // New VM from the newest version (replicated to westeurope).
    let body = vm_body(&vm_name, &nic_id, "westeurope", "2026.1127.1", "Delete");
    let put = sim.put(&vm_id, COMPUTE, &body).await;
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(put.body["properties"]["provisioningState"], "Creating");
    assert!(put.header("azure-asyncoperation").is_some() && put.header("location").is_some());
    assert_eq!(put.header("retry-after").as_deref(), Some("0"), "high time scale: nothing to wait for in real time");
    assert!(!put.body.to_string().contains("Sup3r-Secret"), "the admin password is never returned");
    assert!(put.body["properties"]["vmId"].is_string());
    assert!(put.body["properties"]["timeCreated"].is_string());
    assert_eq!(put.body["tags"]["avd-image-version"], "2026.1127.1");
    assert_eq!(sim.wait_lro(&put).await.body["status"], "Succeeded");
    let vm = sim.get(&format!("{vm_id}?$expand=instanceView"), COMPUTE).await;
    assert_eq!(vm.body["properties"]["provisioningState"], "Succeeded");
    let statuses: Vec<&str> = vm.body["properties"]["instanceView"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"PowerState/running"), "{statuses:?}");
    assert!(!vm.body.to_string().contains("adminPassword"));
    assert_eq!(vm.body["properties"]["storageProfile"]["osDisk"]["deleteOption"], "Delete");
    let new_disk = vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap();
    assert_eq!(sim.get(new_disk, DISK).await.body["managedBy"], vm_id.as_str());

    // The same PUT again: idempotent, no new VM.
    let again = sim.put(&vm_id, COMPUTE, &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["properties"]["vmId"], vm.body["properties"]["vmId"]);
    assert_eq!(sim.stats().await["vmCreates"], 1);

    // The AVD agent, with the pool's token.
    let ext = sim.put_dsc(&vm_id, "hp-test-weu", &token).await;
    assert_eq!(ext.status, 201, "{}", ext.body);
    assert!(!ext.body.to_string().contains(&token), "protected settings are never returned");
    assert_eq!(sim.wait_lro(&ext).await.body["status"], "Succeeded");
    let ext_view = sim.get(&format!("{vm_id}/extensions/Microsoft.PowerShell.DSC?$expand=instanceView"), COMPUTE).await;
    assert_eq!(ext_view.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(ext_view.body["properties"]["instanceView"]["statuses"][0]["code"], "ProvisioningState/succeeded");
    assert!(ext_view.body["properties"].get("protectedSettings").is_none());

    // The agent registers a few sim-minutes later.
    let registered = sim
        .wait_for(&host_id, AVD, Duration::from_secs(10), |r| {
            r.status == 200 && r.body["properties"]["status"] == "Available"
        })
        .await;
    let p = &registered.body["properties"];
    assert_eq!(p["resourceId"], vm_id.as_str());
    assert_eq!(p["virtualMachineId"], vm.body["properties"]["vmId"]);
    assert_eq!(p["allowNewSession"], true);
    assert_eq!(p["sessions"], 0);
    assert!(p["sessionHostHealthCheckResults"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["healthCheckResult"] == "HealthCheckSucceeded"));
    assert_eq!(registered.body["name"], format!("hp-test-weu/{vm_name}.corp.contoso.com"));

    let stats = sim.stats().await;
    assert_eq!(stats["vmCreates"], 1);
    assert!(stats["orphans"].as_array().unwrap().is_empty(), "{}", stats["orphans"]);
    assert!(stats["drainedIdle"].as_array().unwrap().is_empty());
    assert_eq!(
        stats["maxOutOfService"][&hp].as_u64().unwrap(),
        baseline_out.max(out_at_start + 1),
        "one host out at a time"
    );
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn versions_not_replicated_to_the_region_are_refused() {
    // 600x: 2026.1127.1 reaches northeurope 40 sim-minutes after start, 4 real seconds.
    let sim = Sim::start(600.0).await;
    let nic_id = sim.create_nic(PILOT_RG, "avdpln-011-nic", "northeurope").await;
    let vm_id = vm(PILOT_RG, "avdpln-011");

    let early = sim.put_vm(&vm_id, &nic_id, "northeurope", "2026.1127.1", "Delete").await;
    assert_eq!((early.status, early.code()), (404, "GalleryImageNotFound"), "{}", early.body);
    let message = early.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("northeurope") && message.contains("2026.1127.1"), "{message}");
    assert_eq!(early.body["error"]["target"], "imageReference");

    let failed = sim.put_vm(&vm_id, &nic_id, "northeurope", "2026.1113.1", "Delete").await;
    assert_eq!((failed.status, failed.code()), (404, "GalleryImageNotFound"), "replication to northeurope failed");

    let missing = sim.put_vm(&vm_id, &nic_id, "northeurope", "2099.0101.1", "Delete").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_ne!(missing.code(), "GalleryImageNotFound");

    let no_nic = sim.put_vm(&vm_id, &nic(PILOT_RG, "no-such-nic"), "northeurope", "2026.1120.2", "Delete").await;
    assert_eq!((no_nic.status, no_nic.code()), (400, "InvalidResourceReference"));
    // A NIC in another region is not found either.
    let weu_nic = sim.create_nic(PILOT_RG, "avdplw-011-nic", "westeurope").await;
    let other_region = sim.put_vm(&vm_id, &weu_nic, "northeurope", "2026.1120.2", "Delete").await;
    assert_eq!(other_region.status, 400);
    assert_eq!(sim.get(&vm_id, COMPUTE).await.status, 404, "refused creates leave nothing behind");
    assert_eq!(sim.stats().await["vmCreates"], 0);

    // Once replication completes, the same create goes through.
    let replicated = sim
        .wait_for(
            &format!("{}?$expand=ReplicationStatus", version_id("2026.1127.1")),
            "2024-03-03",
            Duration::from_secs(10),
            |r| r.body["properties"]["replicationStatus"]["aggregatedState"] == "Completed",
        )
        .await;
    assert_eq!(replicated.status, 200);
    let ok = sim.put_vm(&vm_id, &nic_id, "northeurope", "2026.1127.1", "Delete").await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(sim.stats().await["vmCreates"], 1);
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn provisioning_failures_and_agents_that_never_register() {
    let sim = Sim::start(3000.0).await;
    sim.faults(json!({"failProvisioning": ["fail"], "agentNeverRegisters": ["mute"]})).await;
    let hp = pool(TEST_POOL_RG, "hp-test-weu");
    let token = sim.issue_token(&hp, 24).await;

    // failProvisioning: the create ends Failed and so does the VM.
    let nic_f = sim.create_nic(TEST_POOL_RG, "avdtst-fail-nic", "westeurope").await;
    let vm_f = vm(TEST_POOL_RG, "avdtst-fail");
    let done = sim.create_vm(&vm_f, &nic_f, "westeurope", "2026.1127.1", "Delete").await;
    assert_eq!(done.body["status"], "Failed", "{}", done.body);
    assert_eq!(done.body["error"]["code"], "OSProvisioningClientError");
    let failed_vm = sim.get(&format!("{vm_f}?$expand=instanceView"), COMPUTE).await;
    assert_eq!(failed_vm.body["properties"]["provisioningState"], "Failed");
    assert_eq!(failed_vm.body["properties"]["instanceView"]["statuses"][0]["level"], "Error");
    // The failed VM is deleted with its NIC and disk.
    let del = sim.delete(&vm_f, COMPUTE).await;
    assert_eq!(sim.wait_lro(&del).await.body["status"], "Succeeded");
    assert_eq!(sim.get(&nic_f, NETWORK).await.status, 404);

    // agentNeverRegisters: the extension succeeds, the host never appears.
    let nic_m = sim.create_nic(TEST_POOL_RG, "avdtst-mute-nic", "westeurope").await;
    let vm_m = vm(TEST_POOL_RG, "avdtst-mute");
    assert_eq!(sim.create_vm(&vm_m, &nic_m, "westeurope", "2026.1127.1", "Delete").await.body["status"], "Succeeded");
    let ext = sim.put_dsc(&vm_m, "hp-test-weu", &token).await;
    assert_eq!(sim.wait_lro(&ext).await.body["status"], "Succeeded");

    // An unknown token: the extension fails and says why.
    let nic_b = sim.create_nic(TEST_POOL_RG, "avdtst-bad-nic", "westeurope").await;
    let vm_b = vm(TEST_POOL_RG, "avdtst-bad");
    assert_eq!(sim.create_vm(&vm_b, &nic_b, "westeurope", "2026.1127.1", "Delete").await.body["status"], "Succeeded");
    let ext = sim.put_dsc(&vm_b, "hp-test-weu", "eyJub3QiOiJpc3N1ZWQifQ.e30.c2ln").await;
    let failed = sim.wait_lro(&ext).await;
    assert_eq!(failed.body["status"], "Failed");
    assert_eq!(failed.body["error"]["code"], "VMExtensionProvisioningError");
    let view = sim.get(&format!("{vm_b}/extensions/Microsoft.PowerShell.DSC?$expand=instanceView"), COMPUTE).await;
    assert_eq!(view.body["properties"]["provisioningState"], "Failed");
    let status = &view.body["properties"]["instanceView"]["statuses"][0];
    assert_eq!(status["level"], "Error");
    assert!(status["message"].as_str().unwrap().contains("registration token"), "{status}");

    // An expired token: issue one for an hour, let the hour pass, then install.
    let nic_e = sim.create_nic(TEST_POOL_RG, "avdtst-late-nic", "westeurope").await;
    let vm_e = vm(TEST_POOL_RG, "avdtst-late");
    assert_eq!(sim.create_vm(&vm_e, &nic_e, "westeurope", "2026.1127.1", "Delete").await.body["status"], "Succeeded");
    let short = sim.issue_token(&hp, 1).await;
    sim.sleep_until(sim.now().await + time::Duration::minutes(70)).await;
    let ext = sim.put_dsc(&vm_e, "hp-test-weu", &short).await;
    let expired = sim.wait_lro(&ext).await;
    assert_eq!(expired.body["status"], "Failed");
    assert!(expired.body["error"]["message"].as_str().unwrap().contains("expired"), "{}", expired.body);

    // Long enough for any agent to have registered: none did.
    sim.sleep_until(sim.now().await + time::Duration::minutes(30)).await;
    for name in ["avdtst-mute", "avdtst-bad", "avdtst-late"] {
        let h = sim.get(&format!("{hp}/sessionHosts/{name}.corp.contoso.com"), AVD).await;
        assert_eq!(h.status, 404, "{name} registered: {}", h.body);
    }
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn detached_nics_and_disks_are_orphans_until_deleted() {
    let sim = Sim::start(3000.0).await;
    assert!(sim.stats().await["orphans"].as_array().unwrap().is_empty(), "the seed has no orphans");
    let nic_id = sim.create_nic(TEST_POOL_RG, "avdtst-009-nic", "westeurope").await;
    assert_eq!(sim.stats().await["orphans"].as_array().unwrap().len(), 1, "a NIC no VM uses yet");
    let vm_id = vm(TEST_POOL_RG, "avdtst-009");
    // Detach (Azure's default): deleting the VM leaves the NIC and the disk behind.
    assert_eq!(sim.create_vm(&vm_id, &nic_id, "westeurope", "2026.1120.2", "Detach").await.body["status"], "Succeeded");
    assert!(sim.stats().await["orphans"].as_array().unwrap().is_empty());
    let disk_id = sim.get(&vm_id, COMPUTE).await.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Location-only polling: 202 until done, then 204.
    sim.faults(json!({"lroStyle": "location"})).await;
    let del = sim.delete(&vm_id, COMPUTE).await;
    assert!(del.header("azure-asyncoperation").is_none());
    let end = sim.wait_lro(&del).await;
    assert_eq!(end.status, 204);
    let mut orphans: Vec<String> =
        sim.stats().await["orphans"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    orphans.sort();
    let mut expected = vec![disk_id.clone(), nic_id.clone()];
    expected.sort();
    assert_eq!(orphans, expected);
    assert_eq!(sim.get(&disk_id, DISK).await.body["properties"]["diskState"], "Unattached");

    for (id, api) in [(&nic_id, NETWORK), (&disk_id, DISK)] {
        let d = sim.delete(id, api).await;
        assert_eq!(d.status, 202, "{}", d.body);
        assert_eq!(sim.wait_lro(&d).await.status, 204);
        assert_eq!(sim.get(id, api).await.status, 404);
        assert_eq!(sim.delete(id, api).await.status, 204, "deleting what is gone");
    }
    assert!(sim.stats().await["orphans"].as_array().unwrap().is_empty());
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn deallocate_and_start_move_the_power_state_and_the_host() {
    let sim = Sim::start(3000.0).await;
    let hp = pool(TEST_POOL_RG, "hp-test-weu");
    let hosts = sim.get(&format!("{hp}/sessionHosts"), AVD).await.body["value"].as_array().unwrap().clone();
    let host = hosts
        .iter()
        .find(|h| h["properties"]["status"] == "Available" && h["properties"]["allowNewSession"] == true)
        .expect("a healthy test host")
        .clone();
    let host_id = host["id"].as_str().unwrap();
    let vm_id = host["properties"]["resourceId"].as_str().unwrap();
    let before = sim.stats().await["maxOutOfService"][&hp].as_u64().unwrap();

    let r = sim.post(&format!("{vm_id}/deallocate"), COMPUTE, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // Another power operation while this one runs: 409.
    let busy = sim.post(&format!("{vm_id}/start"), COMPUTE, None).await;
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(sim.wait_lro(&r).await.body["status"], "Succeeded");
    let view = sim.get(&format!("{vm_id}/instanceView"), COMPUTE).await;
    assert!(
        view.body["statuses"].as_array().unwrap().iter().any(|s| s["code"] == "PowerState/deallocated"),
        "{}",
        view.body
    );
    assert_eq!(sim.get(host_id, AVD).await.body["properties"]["status"], "Shutdown");
    assert_eq!(sim.stats().await["maxOutOfService"][&hp].as_u64().unwrap(), before + 1);
    // Extensions need a running VM.
    let ext = sim.put_dsc(vm_id, "hp-test-weu", "x").await;
    assert_eq!(ext.status, 409);

    let r = sim.post(&format!("{vm_id}/start"), COMPUTE, None).await;
    assert_eq!(r.status, 202);
    assert_eq!(sim.wait_lro(&r).await.body["status"], "Succeeded");
    let vm = sim.get(&format!("{vm_id}?$expand=instanceView"), COMPUTE).await;
    assert!(vm.body["properties"]["instanceView"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["code"] == "PowerState/running"));
    assert_eq!(sim.get(host_id, AVD).await.body["properties"]["status"], "Available");
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn lro_timing_follows_the_sim_clock() {
    // Real time: a VM create takes 4-9 minutes, so Retry-After is the configured cap and polls see InProgress.
    let sim = Sim::start(1.0).await;
    let nic_id = nic(TEST_POOL_RG, "avdtst-010-nic");
    let body = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
        "subnet": {"id": subnet(TEST_POOL_RG, "westeurope")}, "privateIPAllocationMethod": "Static", "privateIPAddress": "10.99.0.10"
    }}]}});
    let r = sim.put(&nic_id, NETWORK, &body).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"], "10.99.0.10");
    if ringmaster_sim::spec::spec_dir_for_tests().is_some() {
        // NIC requests are checked against networkInterface.json.
        let bad = json!({"location": "westeurope", "properties": {"ipConfigurations": "ipconfig1"}});
        let r = sim.put(&nic(TEST_POOL_RG, "bad-nic"), NETWORK, &bad).await;
        assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"), "{}", r.body);
    }
    let vm_id = vm(TEST_POOL_RG, "avdtst-010");
    let put = sim.put_vm(&vm_id, &nic_id, "westeurope", "2026.1127.1", "Delete").await;
    assert_eq!(put.status, 201);
    assert_eq!(put.header("retry-after").as_deref(), Some("1"));
    let status = sim.send(Method::GET, &put.header("azure-asyncoperation").unwrap(), None).await;
    assert_eq!(status.body["status"], "InProgress");
    assert_eq!(status.header("retry-after").as_deref(), Some("1"));
    let result = sim.send(Method::GET, &put.header("location").unwrap(), None).await;
    assert_eq!(result.status, 202);
    // The VM is visible while it is created; a second create of the same body joins the operation.
    assert_eq!(sim.get(&vm_id, COMPUTE).await.body["properties"]["provisioningState"], "Creating");
    let again = sim.put(&vm_id, COMPUTE, &vm_body("avdtst-010", &nic_id, "westeurope", "2026.1127.1", "Delete")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("azure-asyncoperation"), put.header("azure-asyncoperation"));
    // Changing the image of an existing VM is refused.
    let other = sim.put(&vm_id, COMPUTE, &vm_body("avdtst-010", &nic_id, "westeurope", "2026.1120.2", "Delete")).await;
    assert_eq!((other.status, other.code()), (409, "PropertyChangeNotAllowed"));
    // Deleting preempts the create.
    let del = sim.delete(&vm_id, COMPUTE).await;
    assert_eq!(del.status, 202);
    let preempted = sim.send(Method::GET, &put.header("azure-asyncoperation").unwrap(), None).await;
    assert_eq!(preempted.body["status"], "Canceled");
    assert_eq!(preempted.body["error"]["code"], "OperationPreempted");
    sim.assert_no_spec_violations().await;
}

#[tokio::test]
async fn error_rate_faults_fire_with_their_probability_within_their_count() {
    let sim = Sim::start(1.0).await;
    let hp = pool(TEST_POOL_RG, "hp-test-weu");
    sim.faults(json!({"rules": [{"operation": "HostPools_Get", "kind": "status", "status": 503, "probability": 0.3, "count": 1000}]}))
        .await;
    let mut failed = 0;
    for _ in 0..150 {
        if sim.get(&hp, AVD).await.status == 503 {
            failed += 1;
        }
    }
    assert!((20..=80).contains(&failed), "about 30% of 150 failed: {failed}");

    // count bounds the total even at probability 1.
    sim.faults(json!({"rules": [{"operation": "HostPools_Get", "kind": "status", "status": 500, "probability": 1.0, "count": 3}]}))
        .await;
    let statuses: Vec<u16> = {
        let mut v = vec![];
        for _ in 0..6 {
            v.push(sim.get(&hp, AVD).await.status);
        }
        v
    };
    assert_eq!(statuses, [500, 500, 500, 200, 200, 200]);
    assert_eq!(sim.stats().await["errorsInjected"].as_u64().unwrap(), failed + 3);
    sim.assert_no_spec_violations().await;
}
