//! Glue for the sign-in commands: the mode's sign-in settings, one sign-in at a time (cancellable), and a refresh
//! once a person is signed in.

use ringmaster_engine::{AppError, SignInConfig};
use tauri::Manager;
use tokio_util::sync::CancellationToken;

use crate::AppState;

pub fn config(state: &AppState) -> Result<SignInConfig, AppError> {
    state.sign_in.clone().ok_or_else(|| AppError {
        code: "notInteractive".into(),
        message: "This app was started for the demo or the Azure CLI; start it with RINGMASTER_TENANT=entra to sign in"
            .into(),
        request_id: None,
    })
}

/// The settings to sign in with and a fresh cancellation token (cancelling any sign-in still waiting).
pub fn begin(state: &AppState) -> Result<(SignInConfig, CancellationToken), AppError> {
    let config = config(state)?;
    let token = CancellationToken::new();
    if let Ok(mut slot) = state.sign_in_cancel.lock() {
        if let Some(previous) = slot.replace(token.clone()) {
            previous.cancel();
        }
    }
    Ok((config, token))
}

pub fn cancel(state: &AppState) {
    if let Ok(mut slot) = state.sign_in_cancel.lock() {
        if let Some(t) = slot.take() {
            t.cancel();
        }
    }
}

/// Connected as someone (new sign-in or another tenant): read the tenant in the background.
pub fn signed_in(app: &tauri::AppHandle, _state: &AppState) {
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = handle.state::<AppState>();
        let engine = state.engine.clone();
        let _ = crate::refresh_and_emit(&handle, &engine).await;
    });
}
