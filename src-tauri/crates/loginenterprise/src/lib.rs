//! The Login Enterprise (LE) gate: a client for the appliance's v7 public API (the subset the pipeline uses), the
//! verdict on an application test run, and [`run_gate`], which points a test at a ring, runs it and judges it.
//!
//! Spec: `shared/loginenterprise-api/openapi-v7.json` (OpenAPI 3.0.1, base path `/publicApi`).

mod client;
mod error;
mod events;
mod gate;
mod model;
mod verdict;

pub use client::{LeClient, RetryPolicy, MAX_PAGE_SIZE};
pub use error::{LeError, ProblemDetail};
pub use events::{EventClass, EventKind, EVENT_TYPES};
pub use gate::{run_gate, GateEvidence, GateProgress, GateRequest, GateResult};
pub use model::{
    AppResultStatus, AppSummary, ConnectionResourcesUpdate, Connector, PerformanceResult, PlatformSummary, Property,
    Resolution, RunData, RunEvent, RunOverview, RunResult, RunState, SuccessCounts, SystemVersion, TargetHost, Test,
    TestRun, TestState,
};
pub use tokio_util::sync::CancellationToken;
pub use verdict::{verdict, AppResult, RunOutcome, Verdict, VerdictKind};
