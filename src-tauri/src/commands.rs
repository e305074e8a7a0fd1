//! Commands: one line each over the engine. Errors cross as `{ code, message, requestId }`.

use ringmaster_engine::{
    AppError, ConnectionInfo, HostPage, HostQuery, ImageVersionRow, RingBoard, SyncProgress, SyncStatus,
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
