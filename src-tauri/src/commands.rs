//! Commands: one line each over the engine. Errors cross as `{ code, message, requestId }`.

use ringmaster_engine::{
    AppError, ConnectionInfo, HostPage, HostQuery, ImageVersionRow, RingBoard, RolloutPlan, RolloutPolicy,
    RolloutSummary, RolloutView, SyncProgress, SyncStatus,
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
pub async fn get_default_policy(state: State<'_, AppState>) -> Result<RolloutPolicy, AppError> {
    Ok(state.engine.default_policy())
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

/// Every command and the event payload types, for the invoke handler and the generated TypeScript.
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
            plan_rollback,
            rollback_pool,
        ])
        .typ::<SyncProgress>()
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
