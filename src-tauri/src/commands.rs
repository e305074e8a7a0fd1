//! Commands: one line each over the engine. Errors cross as `{ code, message, requestId }`.

use ringmaster_engine::{
    AppError, AppRole, AuditPage, AuditVerification, BuildUpdate, CapturePlan, CaptureSummary, CaptureView,
    ChangeRecordFiles, ConnectionInfo, DeviceCode, GateRun, GoldenMaster, HostPage, HostQuery, ImageVersionRow,
    LoginEnterpriseSettings, MasterRegistration, Notice, ProfileSettings, PromotionCheck, ReleaseSummary, ReleaseView,
    RetentionPolicy, RetentionPreview, RingBoard, RingGates, RingPlan, RolloutPlan, RolloutPolicy, RolloutSummary,
    RolloutView, ScheduledRollout, ScriptCollection, ScriptRun, SessionInfo, SignOffDecision, SignOffEvidence,
    SyncProgress, SyncStatus, TenantChoice,
};
use tauri::State;

use crate::AppState;

#[tauri::command]
#[specta::specta]
pub async fn get_board(state: State<'_, AppState>) -> Result<RingBoard, AppError> {
    Ok(state.engine.board()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_image_versions(state: State<'_, AppState>) -> Result<Vec<ImageVersionRow>, AppError> {
    Ok(state.engine.image_versions()?)
}

#[tauri::command]
#[specta::specta]
pub async fn query_hosts(state: State<'_, AppState>, query: HostQuery) -> Result<HostPage, AppError> {
    Ok(state.engine.query_hosts(&query)?)
}

#[tauri::command]
#[specta::specta]
pub async fn refresh_inventory(app: tauri::AppHandle, state: State<'_, AppState>) -> Result<SyncStatus, AppError> {
    crate::refresh_and_emit(&app, &state.engine).await
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_refresh(state: State<'_, AppState>) -> Result<(), AppError> {
    state.engine.cancel_refresh();
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn get_sync_status(state: State<'_, AppState>) -> Result<SyncStatus, AppError> {
    Ok(state.engine.sync_status()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_connection(state: State<'_, AppState>) -> Result<ConnectionInfo, AppError> {
    Ok(state.engine.connection_info()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_default_policy(
    state: State<'_, AppState>,
    host_pool_id: Option<String>,
    ring: Option<String>,
) -> Result<RolloutPolicy, AppError> {
    Ok(state.engine.policy_for(host_pool_id.as_deref(), ring.as_deref())?)
}

#[tauri::command]
#[specta::specta]
pub async fn plan_rollout(
    state: State<'_, AppState>,
    host_pool_id: String,
    version: String,
    policy: RolloutPolicy,
) -> Result<RolloutPlan, AppError> {
    Ok(state.engine.plan_rollout(&host_pool_id, &version, &policy)?)
}

#[tauri::command]
#[specta::specta]
pub async fn start_rollout(
    state: State<'_, AppState>,
    host_pool_id: String,
    version: String,
    policy: RolloutPolicy,
) -> Result<RolloutView, AppError> {
    Ok(state.engine.start_rollout(&host_pool_id, &version, &policy).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn list_rollouts(state: State<'_, AppState>) -> Result<Vec<RolloutSummary>, AppError> {
    Ok(state.engine.rollouts()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_rollout(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.rollout(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn pause_rollout(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.pause_rollout(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn resume_rollout(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.resume_rollout(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn abort_rollout(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.abort_rollout(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn retry_rollout(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.retry_rollout(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn release_standby(state: State<'_, AppState>, id: String) -> Result<RolloutView, AppError> {
    Ok(state.engine.release_standby(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn plan_rollback(
    state: State<'_, AppState>,
    host_pool_id: String,
    policy: RolloutPolicy,
) -> Result<RolloutPlan, AppError> {
    Ok(state.engine.plan_rollback(&host_pool_id, &policy)?)
}

#[tauri::command]
#[specta::specta]
pub async fn rollback_pool(
    state: State<'_, AppState>,
    host_pool_id: String,
    policy: RolloutPolicy,
) -> Result<RolloutView, AppError> {
    Ok(state.engine.rollback(&host_pool_id, &policy).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn plan_ring_rollout(
    state: State<'_, AppState>,
    ring: String,
    version: String,
    policy: RolloutPolicy,
) -> Result<RingPlan, AppError> {
    Ok(state.engine.plan_ring_rollout(&ring, &version, &policy)?)
}

#[tauri::command]
#[specta::specta]
pub async fn start_ring_rollout(
    state: State<'_, AppState>,
    ring: String,
    version: String,
    policy: RolloutPolicy,
) -> Result<Vec<RolloutView>, AppError> {
    Ok(state.engine.start_ring_rollout(&ring, &version, &policy).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn schedule_ring_rollout(
    state: State<'_, AppState>,
    ring: String,
    version: String,
    policy: RolloutPolicy,
    start_at: String,
) -> Result<Vec<ScheduledRollout>, AppError> {
    Ok(state.engine.schedule_ring_rollout(&ring, &version, &policy, &start_at)?)
}

#[tauri::command]
#[specta::specta]
pub async fn plan_ring_rollback(
    state: State<'_, AppState>,
    ring: String,
    policy: RolloutPolicy,
) -> Result<RingPlan, AppError> {
    Ok(state.engine.plan_ring_rollback(&ring, &policy)?)
}

#[tauri::command]
#[specta::specta]
pub async fn rollback_ring(
    state: State<'_, AppState>,
    ring: String,
    policy: RolloutPolicy,
) -> Result<Vec<RolloutView>, AppError> {
    Ok(state.engine.rollback_ring(&ring, &policy).await?)
}

// ---- golden master, script collections, capture, releases ----

#[tauri::command]
#[specta::specta]
pub async fn get_golden_masters(state: State<'_, AppState>) -> Result<Vec<GoldenMaster>, AppError> {
    Ok(state.engine.golden_masters().await?)
}

#[tauri::command]
#[specta::specta]
pub async fn register_master(
    state: State<'_, AppState>,
    registration: MasterRegistration,
) -> Result<GoldenMaster, AppError> {
    Ok(state.engine.register_master(&registration).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_collections(state: State<'_, AppState>) -> Result<Vec<ScriptCollection>, AppError> {
    Ok(state.engine.collections()?)
}

#[tauri::command]
#[specta::specta]
pub async fn save_collection(
    state: State<'_, AppState>,
    collection: ScriptCollection,
) -> Result<ScriptCollection, AppError> {
    Ok(state.engine.save_collection(&collection)?)
}

#[tauri::command]
#[specta::specta]
pub async fn delete_collection(state: State<'_, AppState>, id: String) -> Result<(), AppError> {
    Ok(state.engine.delete_collection(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn import_collection(state: State<'_, AppState>, text: String) -> Result<ScriptCollection, AppError> {
    Ok(state.engine.import_collection(&text)?)
}

#[tauri::command]
#[specta::specta]
pub async fn export_collection(state: State<'_, AppState>, id: String) -> Result<String, AppError> {
    Ok(state.engine.export_collection(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn start_script_run(
    state: State<'_, AppState>,
    collection_id: String,
    vm_id: String,
) -> Result<ScriptRun, AppError> {
    Ok(state.engine.start_script_run(&collection_id, &vm_id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_script_runs(state: State<'_, AppState>) -> Result<Vec<ScriptRun>, AppError> {
    Ok(state.engine.script_runs()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_script_run(state: State<'_, AppState>, id: String) -> Result<ScriptRun, AppError> {
    Ok(state.engine.script_run(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_build(state: State<'_, AppState>, id: String) -> Result<(), AppError> {
    Ok(state.engine.cancel_build(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn plan_capture(state: State<'_, AppState>, master_vm_id: String) -> Result<CapturePlan, AppError> {
    Ok(state.engine.plan_capture(&master_vm_id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn start_capture(state: State<'_, AppState>, plan: CapturePlan) -> Result<CaptureView, AppError> {
    Ok(state.engine.start_capture(&plan).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_capture(state: State<'_, AppState>, id: String) -> Result<CaptureView, AppError> {
    Ok(state.engine.capture(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_captures(state: State<'_, AppState>) -> Result<Vec<CaptureSummary>, AppError> {
    Ok(state.engine.captures()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_releases(state: State<'_, AppState>) -> Result<Vec<ReleaseSummary>, AppError> {
    Ok(state.engine.releases()?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_release(state: State<'_, AppState>, version: String) -> Result<ReleaseView, AppError> {
    Ok(state.engine.release(&version)?)
}

#[tauri::command]
#[specta::specta]
pub async fn refresh_release(state: State<'_, AppState>, version: String) -> Result<ReleaseView, AppError> {
    Ok(state.engine.refresh_release(&version).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_retention_preview(state: State<'_, AppState>) -> Result<RetentionPreview, AppError> {
    Ok(state.engine.retention_preview()?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_retention_policy(state: State<'_, AppState>, policy: RetentionPolicy) -> Result<(), AppError> {
    Ok(state.engine.set_retention_policy(&policy)?)
}

#[tauri::command]
#[specta::specta]
pub async fn delete_versions(state: State<'_, AppState>, version_ids: Vec<String>) -> Result<Vec<String>, AppError> {
    Ok(state.engine.delete_versions(&version_ids).await?)
}

// ---- gates ----

#[tauri::command]
#[specta::specta]
pub async fn get_ring_gates(state: State<'_, AppState>, ring: String) -> Result<RingGates, AppError> {
    Ok(state.engine.ring_gates(&ring)?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_ring_gates(state: State<'_, AppState>, gates: RingGates) -> Result<RingGates, AppError> {
    Ok(state.engine.set_ring_gates(&gates)?)
}

#[tauri::command]
#[specta::specta]
pub async fn run_gates(state: State<'_, AppState>, version: String, ring: String) -> Result<Vec<GateRun>, AppError> {
    Ok(state.engine.run_gates(&version, &ring)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_gate_runs(state: State<'_, AppState>, version: String) -> Result<Vec<GateRun>, AppError> {
    Ok(state.engine.gate_runs(&version)?)
}

#[tauri::command]
#[specta::specta]
pub async fn export_change_record(state: State<'_, AppState>, version: String) -> Result<ChangeRecordFiles, AppError> {
    Ok(state.engine.export_change_record(&version, None)?)
}

// ---- audit log ----

#[tauri::command]
#[specta::specta]
pub async fn get_audit_log(state: State<'_, AppState>, before: Option<u32>, limit: u32) -> Result<AuditPage, AppError> {
    Ok(state.engine.audit_log(before, limit)?)
}

#[tauri::command]
#[specta::specta]
pub async fn verify_audit_log(state: State<'_, AppState>) -> Result<AuditVerification, AppError> {
    Ok(state.engine.verify_audit_log()?)
}

/// Every command and the event payload types, for the invoke handler and the generated TypeScript.
#[tauri::command]
#[specta::specta]
pub async fn get_promotion_checks(
    state: State<'_, AppState>,
    version: String,
) -> Result<Vec<PromotionCheck>, AppError> {
    Ok(state.engine.promotion_checks(&version)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_signoff_evidence(
    state: State<'_, AppState>,
    version: String,
    ring: String,
) -> Result<SignOffEvidence, AppError> {
    Ok(state.engine.signoff_evidence(&version, &ring)?)
}

#[tauri::command]
#[specta::specta]
pub async fn sign_off(
    state: State<'_, AppState>,
    version: String,
    ring: String,
    decision: SignOffDecision,
    comment: String,
    evidence_sha256: String,
) -> Result<PromotionCheck, AppError> {
    Ok(state.engine.sign_off(&version, &ring, decision, &comment, &evidence_sha256).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn promote(state: State<'_, AppState>, version: String, ring: String) -> Result<Vec<RolloutView>, AppError> {
    Ok(state.engine.promote(&version, &ring).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_promotion_enforced(state: State<'_, AppState>) -> Result<bool, AppError> {
    Ok(state.engine.promotion_enforced()?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_promotion_enforced(state: State<'_, AppState>, enforced: bool) -> Result<(), AppError> {
    Ok(state.engine.set_promotion_enforced(enforced)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_notices(state: State<'_, AppState>) -> Result<Vec<Notice>, AppError> {
    Ok(state.engine.notices())
}

#[tauri::command]
#[specta::specta]
pub async fn dismiss_notice(state: State<'_, AppState>, id: String) -> Result<(), AppError> {
    Ok(state.engine.dismiss_notice(&id)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_app_role(state: State<'_, AppState>) -> Result<AppRole, AppError> {
    Ok(state.engine.app_role()?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_app_role(state: State<'_, AppState>, role: AppRole) -> Result<AppRole, AppError> {
    Ok(state.engine.set_app_role(role)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_login_enterprise(state: State<'_, AppState>) -> Result<LoginEnterpriseSettings, AppError> {
    Ok(state.engine.login_enterprise_settings()?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_login_enterprise(
    state: State<'_, AppState>,
    url: String,
    token: String,
    ca_pem: Option<String>,
    default_test: Option<String>,
) -> Result<LoginEnterpriseSettings, AppError> {
    Ok(state.engine.set_login_enterprise(&url, &token, ca_pem.as_deref(), default_test.as_deref())?)
}

#[tauri::command]
#[specta::specta]
pub async fn clear_login_enterprise(state: State<'_, AppState>) -> Result<LoginEnterpriseSettings, AppError> {
    Ok(state.engine.clear_login_enterprise()?)
}

/// The signed-in person, in interactive mode; `None` in the demo and with the Azure CLI.
#[tauri::command]
#[specta::specta]
pub async fn get_session(state: State<'_, AppState>) -> Result<Option<SessionInfo>, AppError> {
    Ok(state.sign_in.as_ref().map(|c| state.engine.session_info(c)))
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in_with_browser(app: tauri::AppHandle, state: State<'_, AppState>) -> Result<SessionInfo, AppError> {
    let (config, cancel) = crate::session::begin(&state)?;
    // The system browser shows Entra's own sign-in page; its redirect comes back to a loopback listener.
    let info = state
        .engine
        .sign_in_with_browser(&config, |url| open::that_detached(url.as_str()).map_err(|e| e.to_string()), cancel)
        .await?;
    crate::session::signed_in(&app, &state);
    Ok(info)
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in_with_device_code(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
) -> Result<SessionInfo, AppError> {
    let (config, cancel) = crate::session::begin(&state)?;
    let emitter = app.clone();
    let show = move |p: &_| {
        let _ = tauri::Emitter::emit(&emitter, crate::EVENT_DEVICE_CODE, DeviceCode::from(p));
    };
    let info = state.engine.sign_in_with_device_code(&config, show, cancel).await?;
    crate::session::signed_in(&app, &state);
    Ok(info)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_sign_in(state: State<'_, AppState>) -> Result<(), AppError> {
    crate::session::cancel(&state);
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn get_tenants(state: State<'_, AppState>) -> Result<Vec<TenantChoice>, AppError> {
    Ok(state.engine.tenants().await?)
}

#[tauri::command]
#[specta::specta]
pub async fn switch_tenant(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    tenant_id: String,
) -> Result<SessionInfo, AppError> {
    let info = state.engine.switch_tenant(&crate::session::config(&state)?, &tenant_id)?;
    crate::session::signed_in(&app, &state);
    Ok(info)
}

#[tauri::command]
#[specta::specta]
pub async fn sign_out(app: tauri::AppHandle, state: State<'_, AppState>) -> Result<SessionInfo, AppError> {
    let info = state.engine.sign_out(&crate::session::config(&state)?)?;
    let _ = tauri::Emitter::emit(&app, crate::EVENT_UPDATED, state.engine.sync_status().ok());
    Ok(info)
}

/// Start a rollout when a maintenance window opens (`start_at`: RFC 3339 with an offset).
#[tauri::command]
#[specta::specta]
pub async fn schedule_rollout(
    state: State<'_, AppState>,
    host_pool_id: String,
    version: String,
    policy: RolloutPolicy,
    start_at: String,
) -> Result<ScheduledRollout, AppError> {
    Ok(state.engine.schedule_rollout(&host_pool_id, &version, &policy, &start_at)?)
}

#[tauri::command]
#[specta::specta]
pub async fn get_scheduled_rollouts(state: State<'_, AppState>) -> Result<Vec<ScheduledRollout>, AppError> {
    Ok(state.engine.scheduled_rollouts()?)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_scheduled_rollout(
    state: State<'_, AppState>,
    id: String,
) -> Result<Vec<ScheduledRollout>, AppError> {
    Ok(state.engine.cancel_scheduled_rollout(&id)?)
}

/// The pool's deployment profile (read off one of its hosts the first time).
#[tauri::command]
#[specta::specta]
pub async fn get_pool_profile(state: State<'_, AppState>, host_pool_id: String) -> Result<ProfileSettings, AppError> {
    Ok(state.engine.pool_profile(&host_pool_id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn set_pool_profile(
    state: State<'_, AppState>,
    host_pool_id: String,
    profile: ProfileSettings,
) -> Result<ProfileSettings, AppError> {
    Ok(state.engine.set_pool_profile(&host_pool_id, &profile).await?)
}

/// Read only these subscriptions (empty: all of them).
#[tauri::command]
#[specta::specta]
pub async fn set_inventory_subscriptions(
    state: State<'_, AppState>,
    ids: Vec<String>,
) -> Result<Vec<String>, AppError> {
    Ok(state.engine.set_inventory_subscriptions(&ids)?)
}

pub fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(tauri_specta::collect_commands![
            get_board,
            get_image_versions,
            query_hosts,
            refresh_inventory,
            cancel_refresh,
            get_sync_status,
            get_connection,
            get_default_policy,
            plan_rollout,
            start_rollout,
            list_rollouts,
            get_rollout,
            pause_rollout,
            resume_rollout,
            abort_rollout,
            retry_rollout,
            release_standby,
            plan_rollback,
            rollback_pool,
            plan_ring_rollout,
            start_ring_rollout,
            schedule_ring_rollout,
            plan_ring_rollback,
            rollback_ring,
            get_golden_masters,
            register_master,
            get_collections,
            save_collection,
            delete_collection,
            import_collection,
            export_collection,
            start_script_run,
            get_script_runs,
            get_script_run,
            cancel_build,
            plan_capture,
            start_capture,
            get_capture,
            get_captures,
            get_releases,
            get_release,
            refresh_release,
            get_retention_preview,
            set_retention_policy,
            delete_versions,
            get_audit_log,
            verify_audit_log,
            get_ring_gates,
            set_ring_gates,
            run_gates,
            get_gate_runs,
            export_change_record,
            get_promotion_checks,
            get_signoff_evidence,
            sign_off,
            promote,
            get_promotion_enforced,
            set_promotion_enforced,
            get_notices,
            dismiss_notice,
            get_app_role,
            set_app_role,
            get_login_enterprise,
            set_login_enterprise,
            clear_login_enterprise,
            get_session,
            sign_in_with_browser,
            sign_in_with_device_code,
            cancel_sign_in,
            get_tenants,
            switch_tenant,
            sign_out,
            set_inventory_subscriptions,
            schedule_rollout,
            get_scheduled_rollouts,
            cancel_scheduled_rollout,
            get_pool_profile,
            set_pool_profile,
        ])
        .typ::<SyncProgress>()
        .typ::<BuildUpdate>()
        .typ::<DeviceCode>()
        // One TypeScript type per Rust type (the UI both receives and sends these shapes).
        .disable_serde_phases()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in bindings must be what the Rust types generate. `UPDATE_BINDINGS=1` rewrites them.
    #[test]
    fn typescript_bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings.ts");
        let tmp = std::env::temp_dir().join(format!("ringmaster-bindings-{}.ts", std::process::id()));
        specta_builder().export(specta_typescript::Typescript::default(), &tmp).expect("bindings export");
        let generated = std::fs::read_to_string(&tmp).expect("read generated bindings");
        let _ = std::fs::remove_file(&tmp);
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &generated).expect("write bindings");
            return;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == generated,
            "ui/src/lib/bindings.ts is out of date with the Rust types: run `UPDATE_BINDINGS=1 cargo test -p ringmaster typescript_bindings_are_current`"
        );
    }
}
