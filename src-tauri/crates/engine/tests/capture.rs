//! Steps 1 and 2 end to end against the simulated tenant: script collections on the golden master, a
//! non-destructive capture into a gallery version, and the release page's checklist computed from the evidence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_engine::{
    CaptureState, CaptureView, ChecklistState, Engine, MasterRegistration, RunState, Script, ScriptCollection,
    ScriptParameter, ScriptRun, StepState,
};
use ringmaster_sim::{Seed, SimHandle};
use ringmaster_store::Store;
use serde_json::{json, Value};

mod common;

const TIME_SCALE: f64 = 3000.0;

struct Fixture {
    sim: SimHandle,
    engine: Engine,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("build.db")).unwrap()));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    Fixture { sim, engine, _dir: dir }
}

fn master_id(sim: &SimHandle) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/rg-avd-build/providers/Microsoft.Compute/virtualMachines/vm-golden-w11",
        sim.ready.subscriptions[0]
    )
}

async fn register(f: &Fixture) -> String {
    let masters = f.engine.golden_masters().await.unwrap();
    let found = masters.iter().find(|m| m.name == "vm-golden-w11").expect("the seeded master is discovered by its tag");
    assert!(found.registered_at.is_none());
    assert_eq!(found.power_state, "running", "the power state of a master not yet registered is read too");
    assert!(found.image_definition_id.contains("/galleries/gal_avd_contoso/images/"), "{}", found.image_definition_id);
    let m = f
        .engine
        .register_master(&MasterRegistration {
            vm_id: found.vm_id.clone(),
            image_definition_id: found.image_definition_id.clone(),
            capture_subnet_id: found.capture_subnet_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(m.power_state, "running");
    assert!(m.vm_id.eq_ignore_ascii_case(&master_id(&f.sim)));
    m.vm_id
}

fn script(name: &str, content: &str) -> Script {
    Script {
        name: name.into(),
        content: content.into(),
        parameters: vec![],
        continue_on_error: false,
        timeout_seconds: 600,
    }
}

fn collection(scripts: Vec<Script>) -> ScriptCollection {
    ScriptCollection {
        id: String::new(),
        name: "Monthly updates".into(),
        description: "Apps and patches".into(),
        scripts,
        updated_at: String::new(),
    }
}

async fn wait_run(engine: &Engine, id: &str) -> ScriptRun {
    let started = Instant::now();
    loop {
        let r = engine.script_run(id).unwrap();
        if r.state != RunState::Running {
            return r;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "run still going: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_capture(engine: &Engine, id: &str) -> CaptureView {
    let started = Instant::now();
    loop {
        let c = engine.capture(id).unwrap();
        if c.state != CaptureState::Running {
            return c;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "capture still going: {:?} {:?}", c.stage, c.events);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_master_untouched_and_nothing_left(stats: &Value) {
    assert_eq!(stats["masterViolations"], json!([]), "the master was touched");
    assert_eq!(stats["captureLeftovers"], json!([]), "temporary resources left behind");
    assert_eq!(stats["specViolations"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_runs_in_order_and_stops_at_the_first_failure() {
    let f = fixture().await;
    let vm = register(&f).await;
    let mut install = script("Install 7-Zip", "Write-Output \"Installing $Channel\"\nWrite-Output 'done'");
    install.parameters = vec![ScriptParameter { name: "Channel".into(), value: "stable".into() }];
    let mut optional = script("Optional cleanup", "Write-Error 'nothing to clean'\nexit 2");
    optional.continue_on_error = true;
    let c = f
        .engine
        .save_collection(&collection(vec![
            install,
            optional,
            script("Break", "Write-Output 'about to fail'\nexit 5"),
            script("Never", "Write-Output 'unreachable'"),
        ]))
        .unwrap();
    let run = f.engine.start_script_run(&c.id, &vm).unwrap();
    let run = wait_run(&f.engine, &run.id).await;
    assert_eq!(run.state, RunState::Failed);
    let states: Vec<StepState> = run.steps.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![StepState::Succeeded, StepState::Failed, StepState::Failed, StepState::Skipped]);
    assert!(run.steps[0].output.contains("Installing stable"), "{}", run.steps[0].output);
    assert_eq!(run.steps[1].exit_code, Some(2));
    assert!(run.steps[1].error.contains("nothing to clean"));
    assert_eq!(run.steps[2].exit_code, Some(5));
    assert!(run.steps.iter().all(|s| s.script_sha256.len() == 64));
    assert_eq!(run.started_by, "engine test");
    assert!(run.steps[0].duration_ms.is_some());

    // A second run while one is going is refused, not queued behind Azure's back.
    let c2 = f
        .engine
        .save_collection(&collection(vec![script("Slow", "Start-Sleep -Seconds 300\nWrite-Output 'ok'")]))
        .unwrap();
    let slow = f.engine.start_script_run(&c2.id, &vm).unwrap();
    let again = f.engine.start_script_run(&c2.id, &vm).unwrap_err();
    assert!(again.to_string().contains("already running"), "{again}");
    let slow = wait_run(&f.engine, &slow.id).await;
    assert_eq!(slow.state, RunState::Succeeded);

    let stats = common::stats(&f.sim).await;
    assert_eq!(stats["specViolations"], json!([]));
    let leftover_commands = stats["requestsByOperation"]["VirtualMachineRunCommands_Delete"].as_u64().unwrap_or(0);
    assert!(leftover_commands >= 4, "finished run commands are removed from the VM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_makes_a_version_without_touching_the_master_and_the_checklist_follows() {
    let f = fixture().await;
    let vm = register(&f).await;
    let c = f.engine.save_collection(&collection(vec![script("Patch", "Write-Output 'patched'")])).unwrap();
    let run = f.engine.start_script_run(&c.id, &vm).unwrap();
    assert_eq!(wait_run(&f.engine, &run.id).await.state, RunState::Succeeded);

    let plan = f.engine.plan_capture(&vm).await.unwrap();
    assert!(plan.version.starts_with("2026."), "{}", plan.version);
    assert!(plan.exclude_from_latest);
    assert_eq!(plan.last_run_id.as_deref(), Some(run.id.as_str()));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let regions: Vec<&str> = plan.target_regions.iter().map(|r| r.region.as_str()).collect();
    assert!(regions.contains(&"westeurope") && regions.contains(&"northeurope"), "{regions:?}");
    assert!(plan.target_regions.iter().all(|r| r.replicas >= 1 && !r.reason.is_empty()));

    let started = f.engine.start_capture(&plan).await.unwrap();
    let done = wait_capture(&f.engine, &started.id).await;
    assert_eq!(done.state, CaptureState::Succeeded, "{:?} {:?}", done.reason, done.events);
    assert!(
        done.resources.iter().filter(|r| r.kind != "imageVersion").all(|r| r.state == "deleted"),
        "{:?}",
        done.resources
    );
    assert!(done.stages.iter().all(|s| s.finished_at.is_some() || s.stage == ringmaster_engine::CaptureStage::Done));
    assert_master_untouched_and_nothing_left(&common::stats(&f.sim).await);

    // The version is in the cache at once (no full refresh), replicating to the other ring regions; a targeted
    // refresh follows its replication.
    let release = f.engine.release(&plan.version).unwrap();
    assert_eq!(release.summary.replication_state, "InProgress");
    let started = Instant::now();
    let release = loop {
        let r = f.engine.refresh_release(&plan.version).await.unwrap();
        if r.summary.replication_state == "Completed" {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "replication never completed: {:?}", r.regions);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(release.regions.iter().all(|r| r.state == "Completed"), "{:?}", release.regions);
    assert_eq!(release.checklist[2].state, ChecklistState::Met, "{:?}", release.checklist[2]);
    let state = |n: u32| release.checklist.iter().find(|i| i.number == n).unwrap().state;
    assert_eq!(state(1), ChecklistState::Met, "{:?}", release.checklist[0]);
    assert_eq!(state(2), ChecklistState::Met, "{:?}", release.checklist[1]);
    assert_eq!(state(4), ChecklistState::MissingEvidence, "not rolled out to Test yet");
    assert_eq!(state(5), ChecklistState::MissingEvidence, "no gate has run on it yet");
    assert_eq!(state(6), ChecklistState::MissingEvidence, "nobody signed off in Pilot");
    assert_eq!(state(7), ChecklistState::Met, "{:?}", release.checklist[6]);
    assert_eq!(release.capture.as_ref().map(|c| c.state), Some(CaptureState::Succeeded));
    assert_eq!(release.runs.len(), 1);
    assert!(f.engine.releases().unwrap().iter().any(|r| r.version == plan.version));

    // A second capture gets the next name, and with no new script run its item 1 is not met.
    let plan2 = f.engine.plan_capture(&vm).await.unwrap();
    assert_ne!(plan2.version, plan.version);
    assert!(plan2.warnings.iter().any(|w| w.contains("item 1")), "{:?}", plan2.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sysprep_leaves_nothing_behind_and_says_why() {
    let f = fixture().await;
    let vm = register(&f).await;
    common::set_faults(&f.sim, json!({"sysprepFails": ["rm-cap-"]})).await;
    let plan = f.engine.plan_capture(&vm).await.unwrap();
    let started = f.engine.start_capture(&plan).await.unwrap();
    let done = wait_capture(&f.engine, &started.id).await;
    assert_eq!(done.state, CaptureState::Failed);
    let reason = done.reason.clone().unwrap_or_default();
    assert!(reason.contains("Sysprep"), "{reason}");
    assert!(done.sysprep_output.to_ascii_lowercase().contains("setupact.log"), "{}", done.sysprep_output);
    assert!(done.resources.iter().all(|r| r.state == "deleted"), "{:?}", done.resources);
    assert_master_untouched_and_nothing_left(&common::stats(&f.sim).await);
    // Nothing was added to the gallery.
    f.engine.refresh(&|_| {}).await.unwrap();
    assert!(f.engine.release(&plan.version).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let f = fixture().await;
    let vm = register(&f).await;
    let err = f.engine.save_collection(&collection(vec![])).unwrap_err();
    assert!(err.to_string().contains("at least one script"));
    let err = f.engine.import_collection("{\"name\": 3}").unwrap_err();
    assert!(err.to_string().contains("not a Ringmaster script collection"), "{err}");
    let definition = f.engine.golden_masters().await.unwrap()[0].image_definition_id.clone();
    let register = |image_definition_id: &str, capture_subnet_id: &str| MasterRegistration {
        vm_id: vm.clone(),
        image_definition_id: image_definition_id.into(),
        capture_subnet_id: capture_subnet_id.into(),
    };
    let subnet = vm.replace(
        "Microsoft.Compute/virtualMachines/vm-golden-w11",
        "Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/snet-capture",
    );
    let err = f.engine.register_master(&register(&definition, &format!("{subnet}/../b"))).await.unwrap_err();
    assert!(err.to_string().contains("not a subnet resource id"), "{err}");
    let err = f.engine.register_master(&register("x", &subnet)).await.unwrap_err();
    assert!(err.to_string().contains("not an Azure resource id"), "{err}");
    let err = f.engine.register_master(&register(&vm, &subnet)).await.unwrap_err();
    assert!(err.to_string().contains("not a Microsoft.Compute/galleries/images id"), "{err}");
    // A plan edited in the UI to point somewhere else is refused before any call to Azure.
    let mut tampered = f.engine.plan_capture(&vm).await.unwrap();
    tampered.master_vm_id = format!("{vm}?api-version=2020-01-01");
    assert!(f.engine.start_capture(&tampered).await.unwrap_err().to_string().contains("'?'"));
    let err = f.engine.plan_rollout(&format!("{vm}/../x"), "2026.1127.1", &Default::default()).unwrap_err();
    assert!(err.to_string().contains("path step"), "{err}");
    let mut plan = f.engine.plan_capture(&vm).await.unwrap();
    plan.version = "2026.11.27.1".into();
    assert!(f.engine.start_capture(&plan).await.unwrap_err().to_string().contains("not a version name"));
    let existing = f.engine.image_versions().unwrap()[0].name.clone();
    plan.version = existing;
    assert!(f.engine.start_capture(&plan).await.unwrap_err().to_string().contains("already exists"));
    // An exported collection imports as a new one.
    let c = f.engine.save_collection(&collection(vec![script("A", "Write-Output 'a'")])).unwrap();
    let text = f.engine.export_collection(&c.id).unwrap();
    let imported = f.engine.import_collection(&text).unwrap();
    assert_ne!(imported.id, c.id);
    assert_eq!(imported.scripts, c.scripts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_what_runs_and_the_rollback_targets() {
    let f = fixture().await;
    let preview = f.engine.retention_preview().unwrap();
    let versions = f.engine.image_versions().unwrap();
    assert_eq!(preview.keep.len() + preview.delete.len(), versions.len());
    for v in versions.iter().filter(|v| v.hosts > 0) {
        assert!(preview.keep.iter().any(|k| k.version == v.name), "{} runs on hosts", v.name);
    }
    // Deleting a kept version is refused with the reason.
    let kept = &preview.keep[0];
    let err = f.engine.delete_versions(std::slice::from_ref(&kept.version_id)).await.unwrap_err();
    assert!(err.to_string().contains("must be kept"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_are_found_without_resource_graph_too() {
    let f = fixture().await;
    common::set_faults(&f.sim, json!({"graphUnavailable": true})).await;
    let masters = f.engine.golden_masters().await.unwrap();
    assert_eq!(masters.iter().filter(|m| m.name == "vm-golden-w11").count(), 1);
    assert!(masters.iter().all(|m| !m.capture_subnet_id.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_lands_in_the_hash_chained_audit_log() {
    let f = fixture().await;
    let vm = register(&f).await;
    let c = f.engine.save_collection(&collection(vec![script("Patch", "Write-Output 'patched'")])).unwrap();
    let run = f.engine.start_script_run(&c.id, &vm).unwrap();
    wait_run(&f.engine, &run.id).await;
    let page = f.engine.audit_log(None, 100).unwrap();
    let actions: Vec<&str> = page.entries.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["master.register", "collection.save", "run.start", "run.finish"]);
    assert_eq!(page.entries.last().unwrap().actor, "engine test", "who registered the master");
    assert_eq!(page.entries[0].actor, "Ringmaster (automatic)", "a run ending is recorded as the app");
    assert!(page.entries[0].detail.contains("\"result\":\"succeeded\""), "{}", page.entries[0].detail);
    let v = f.engine.verify_audit_log().unwrap();
    assert!(v.intact && v.entries == 4, "{v:?}");
    // Paging: newest first, two at a time.
    let first = f.engine.audit_log(None, 2).unwrap();
    assert_eq!(first.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 3]);
    let older = f.engine.audit_log(first.next_before, 2).unwrap();
    assert_eq!(older.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(older.next_before, None);
}
