//! The Tauri app: wiring (store, engine, tenant connection), thin commands over the engine, and events.

mod commands;
mod connect;
mod logging;
mod session;

use std::sync::Arc;

use ringmaster_engine::Engine;
use ringmaster_store::Store;
use tauri::{Emitter, Manager};

pub use commands::specta_builder;

/// What every command reaches through `State`.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Keeps the in-process simulated tenant alive in demo mode.
    pub _sim: tokio::sync::Mutex<Option<ringmaster_sim::SimHandle>>,
    /// How a person signs in (interactive mode only).
    pub sign_in: Option<ringmaster_engine::SignInConfig>,
    /// Cancels the sign-in under way.
    pub sign_in_cancel: std::sync::Mutex<Option<tokio_util::sync::CancellationToken>>,
}

pub const EVENT_PROGRESS: &str = "inventory-progress";
pub const EVENT_UPDATED: &str = "inventory-updated";
/// Payload: the rollout's id. The UI fetches the rollout it shows.
pub const EVENT_ROLLOUT: &str = "rollout-updated";
/// Payload: `BuildUpdate` (`run` or `capture`, and its id). The UI fetches what it shows.
pub const EVENT_BUILD: &str = "build-updated";
/// Payload: `DeviceCode`, while a device code sign-in waits for the person.
pub const EVENT_DEVICE_CODE: &str = "device-code";

pub fn run() {
    // stderr now; the log file in the app's log dir once the logging plugin below opens it. Both redacted.
    let log_file = logging::init();
    let builder = specta_builder();
    let result = tauri::Builder::default()
        // First: a second launch hands over to the running instance, which shows and focuses its window, and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
        }))
        .plugin(logging::plugin(log_file))
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            builder.mount_events(app);
            let mode = connect::Mode::from_env().map_err(|e| -> Box<dyn std::error::Error> { e.into() })?;
            let data_dir = match std::env::var_os("RINGMASTER_DATA_DIR") {
                Some(d) => std::path::PathBuf::from(d),
                None => app.path().app_data_dir()?,
            };
            let db_path = data_dir.join(mode.database_file());
            let store = match Store::open(&db_path) {
                Ok(s) => s,
                Err(e) => {
                    // Keep the app usable; the settings screen shows the in-memory path.
                    tracing::error!("{e}; using an in-memory cache for this session");
                    Store::open_in_memory()?
                }
            };
            let store = Arc::new(store);
            let engine = Arc::new(Engine::new(store.clone()));
            // Secrets (the Login Enterprise token) are sealed in SQLite under a data key in the OS keyring; with no
            // keyring the app says so and refuses to store them.
            let blobs: Arc<dyn ringmaster_secrets::SecretBlobs> = store;
            engine.set_secret_store(
                ringmaster_secrets::KeyringSecretStore::new(blobs)
                    .map(|s| Arc::new(s) as Arc<dyn ringmaster_secrets::SecretStore>)
                    .map_err(|e| e.to_string()),
            );
            let emitter = app.handle().clone();
            engine.set_rollout_notifier(Arc::new(move |id: &str| {
                let _ = emitter.emit(EVENT_ROLLOUT, id.to_string());
            }));
            let emitter = app.handle().clone();
            engine.set_build_notifier(Arc::new(move |u: &ringmaster_engine::BuildUpdate| {
                let _ = emitter.emit(EVENT_BUILD, u.clone());
            }));
            let sign_in = mode.sign_in_config();
            app.manage(AppState {
                engine: engine.clone(),
                _sim: tokio::sync::Mutex::new(None),
                sign_in: sign_in.clone(),
                sign_in_cancel: std::sync::Mutex::new(None),
            });
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let state = handle.state::<AppState>();
                // Scheduled rollouts start when their window opens (checked every 30 s); rings baking a release
                // get a health check every 10 minutes. On the async runtime: setup itself runs outside it.
                engine.start_monitor(std::time::Duration::from_secs(30), std::time::Duration::from_secs(600));
                if let Some(config) = &sign_in {
                    // Interactive mode: resume the saved session, or leave the UI to show the sign-in screen.
                    match engine.restore_session(config) {
                        Ok(info) if info.signed_in => {
                            let _ = refresh_and_emit(&handle, &engine).await;
                        }
                        Ok(_) => {
                            let _ = handle.emit(EVENT_UPDATED, engine.sync_status().ok());
                        }
                        Err(e) => tracing::error!("could not resume the session: {e}"),
                    }
                    return;
                }
                match connect::connect(&mode).await {
                    Ok((connection, sim)) => {
                        engine.connect(connection);
                        *state._sim.lock().await = sim;
                        // A failure is recorded in the sync status and announced by the event.
                        let _ = refresh_and_emit(&handle, &engine).await;
                    }
                    Err(e) => {
                        tracing::error!("could not connect: {e}");
                        let _ = handle.emit(EVENT_UPDATED, engine.sync_status().ok());
                    }
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("Ringmaster could not start: {e}");
        std::process::exit(1);
    }
}

/// Refresh the inventory, streaming progress and announcing the result (success or failure) to the UI.
pub async fn refresh_and_emit(
    handle: &tauri::AppHandle,
    engine: &Engine,
) -> Result<ringmaster_engine::SyncStatus, ringmaster_engine::AppError> {
    let h = handle.clone();
    let progress = move |p: ringmaster_engine::SyncProgress| {
        let _ = h.emit(EVENT_PROGRESS, p);
    };
    let result = engine.refresh(&progress).await.map_err(ringmaster_engine::AppError::from);
    // A refresh refused because another one runs changed nothing: announcing its status (running) could reach the
    // UI after the other one's final status and leave it showing a refresh that has ended.
    if result.as_ref().is_err_and(|e| e.code == "AlreadyRunning") {
        return result;
    }
    if let Ok(status) = engine.sync_status() {
        tracing::info!("refresh {} ended; announcing it", status.finished_run);
        let _ = handle.emit(EVENT_UPDATED, status);
    }
    result
}
