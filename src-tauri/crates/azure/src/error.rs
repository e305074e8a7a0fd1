//! Errors from Azure and from talking to it. Each carries what an admin needs to act or to open a ticket:
//! ARM's error code, its message and the `x-ms-request-id`.

/// An error body ARM returned (`{"error":{"code","message"}}`) with the response's identifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("{}: {} (HTTP {})", .0.code, .0.message, .0.status)]
    Arm(ArmError),
    #[error("could not reach {host}: {detail}")]
    Transport { host: String, detail: String, timed_out: bool },
    #[error("sign-in failed: {0}")]
    Auth(String),
    #[error("Azure sent a response this app cannot read ({what}): {detail}")]
    Decode { what: String, detail: String, request_id: Option<String> },
    #[error("the operation {operation} ended {status}: {code}: {message}")]
    OperationFailed { operation: String, status: String, code: String, message: String, request_id: Option<String> },
    #[error("refused to follow a link to {0}: it is not the configured Azure Resource Manager endpoint")]
    ForeignLink(String),
    #[error("{0}")]
    Config(String),
    #[error("cancelled")]
    Cancelled,
}

impl AzureError {
    /// A stable code for the UI to branch on.
    pub fn code(&self) -> String {
        match self {
            AzureError::Arm(e) => e.code.clone(),
            AzureError::Transport { timed_out: true, .. } => "Timeout".into(),
            AzureError::Transport { .. } => "Unreachable".into(),
            AzureError::Auth(_) => "AuthenticationFailed".into(),
            AzureError::Decode { .. } => "UnreadableResponse".into(),
            AzureError::OperationFailed { code, .. } => code.clone(),
            AzureError::ForeignLink(_) => "ForeignLink".into(),
            AzureError::Config(_) => "Configuration".into(),
            AzureError::Cancelled => "Cancelled".into(),
        }
    }

    pub fn request_id(&self) -> Option<String> {
        match self {
            AzureError::Arm(e) => e.request_id.clone(),
            AzureError::Decode { request_id, .. } | AzureError::OperationFailed { request_id, .. } => {
                request_id.clone()
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Arm(e) => Some(e.status),
            _ => None,
        }
    }
}
