//! What can go wrong talking to a Login Enterprise appliance, each phrased so an admin knows what to do next.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An RFC 7807 problem body (`ProblemDetails`, `ValidationProblemDetails`, `NotFoundProblemDetails` in the spec).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProblemDetail {
    #[serde(rename = "type")]
    pub problem_type: Option<String>,
    pub title: Option<String>,
    pub status: Option<u16>,
    pub detail: Option<String>,
    pub instance: Option<String>,
    /// Field errors of a validation problem (400).
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

impl fmt::Display for ProblemDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = self.title.as_deref().filter(|t| !t.is_empty());
        let detail = self.detail.as_deref().filter(|d| !d.is_empty());
        match (title, detail) {
            (Some(t), Some(d)) => write!(f, "{t}: {d}")?,
            (Some(t), None) => write!(f, "{t}")?,
            (None, Some(d)) => write!(f, "{d}")?,
            (None, None) => write!(f, "no detail given")?,
        }
        if let Some(errors) = self.errors.as_ref().filter(|e| !e.is_empty()) {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {}", v.join(", "))).collect();
            write!(f, " ({})", list.join("; "))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeError {
    /// 401 carries no body, so there is nothing more to say than what to do.
    #[error("the appliance refused the access token: create a new one under Other > Access control > Public API")]
    Unauthorized,
    #[error("{call}: the appliance refused the request (409 Conflict): {problem}")]
    /// Boxed: a problem body is large and errors travel by value.
    Conflict { call: &'static str, problem: Box<ProblemDetail> },
    #[error("{call}: not found on the appliance: {}", detail.as_deref().unwrap_or("no detail given"))]
    NotFound { call: &'static str, detail: Option<String> },
    #[error("{call}: the appliance answered HTTP {status} {title}: {detail}")]
    Problem { call: &'static str, status: u16, title: String, detail: String },
    #[error("the appliance's answer to {call} is not what the Login Enterprise API describes: {reason}")]
    BadResponse { call: &'static str, reason: String },
    #[error("the appliance at {host} did not answer ({call}): {reason}")]
    Unreachable { host: String, call: &'static str, reason: String, timed_out: bool },
    #[error("'{url}' is not a usable appliance address: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl LeError {
    /// A stable code for the UI and the evidence bundle to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            LeError::Unauthorized => "Unauthorized",
            LeError::Conflict { .. } => "Conflict",
            LeError::NotFound { .. } => "NotFound",
            LeError::Problem { .. } => "Problem",
            LeError::BadResponse { .. } => "BadResponse",
            LeError::Unreachable { timed_out: true, .. } => "Timeout",
            LeError::Unreachable { .. } => "Unreachable",
            LeError::InvalidUrl { .. } => "InvalidUrl",
        }
    }

    /// The HTTP status the appliance answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            LeError::Unauthorized => Some(401),
            LeError::Conflict { .. } => Some(409),
            LeError::NotFound { .. } => Some(404),
            LeError::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }
}
