//! The v7 API's bodies the gate reads and writes. Reads are lenient (nearly every field is nullable in the spec and
//! a newer appliance may add enum values); each read keeps the raw JSON for the evidence bundle.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::events::EventKind;

/// `null` and a missing field both read as the type's default (the spec marks most lists nullable).
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `TestControlState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TestState {
    Disabled,
    Enabled,
    Running,
    Stopping,
    #[serde(other)]
    Unknown,
}

/// `ApplicationTestState`: a run goes created -> testRunEnded -> completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    Created,
    TestRunEnded,
    Completed,
    #[serde(other)]
    Unknown,
}

impl RunState {
    pub fn as_api(&self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::TestRunEnded => "testRunEnded",
            RunState::Completed => "completed",
            RunState::Unknown => "unknown",
        }
    }
}

/// `ApplicationTestResult`: how the run itself ended (not whether the apps passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunResult {
    Successful,
    InternalError,
    Cancelled,
    Incomplete,
    #[serde(other)]
    Unknown,
}

impl RunResult {
    pub fn as_api(&self) -> &'static str {
        match self {
            RunResult::Successful => "successful",
            RunResult::InternalError => "internalError",
            RunResult::Cancelled => "cancelled",
            RunResult::Incomplete => "incomplete",
            RunResult::Unknown => "unknown",
        }
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_api())
    }
}

/// `ApplicationResultStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppResultStatus {
    Successful,
    OverThreshold,
    Error,
    #[serde(other)]
    Unknown,
}

/// `SystemVersionResult`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemVersion {
    pub current_version: Option<String>,
    pub latest_version: Option<String>,
}

/// An `ApplicationTest` (or another test type, which the gate refuses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Test {
    #[serde(rename = "type")]
    pub test_type: String,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub state: Option<TestState>,
    #[serde(default)]
    pub connection_resources: Option<Value>,
    #[serde(skip)]
    pub raw: Value,
}

impl Test {
    pub fn is_application_test(&self) -> bool {
        self.test_type == "ApplicationTest"
    }
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// `SuccessCounts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessCounts {
    pub success_count: u32,
    pub total_count: u32,
}

/// An `ApplicationTestRun`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    #[serde(rename = "type")]
    pub run_type: String,
    pub id: String,
    #[serde(default)]
    pub test_id: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub started: Option<String>,
    #[serde(default)]
    pub finished: Option<String>,
    #[serde(default)]
    pub counter: Option<u32>,
    #[serde(default)]
    pub state: Option<RunState>,
    #[serde(default)]
    pub result: Option<RunResult>,
    #[serde(default)]
    pub app_failure_results: Option<SuccessCounts>,
    #[serde(default)]
    pub app_performance_results: Option<SuccessCounts>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(skip)]
    pub raw: Value,
}

impl TestRun {
    pub fn is_completed(&self) -> bool {
        self.state == Some(RunState::Completed)
    }
}

/// `Property`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Property {
    pub property_id: Option<String>,
    pub value: Option<String>,
}

/// An `Event` of a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    #[serde(default)]
    pub id: Option<String>,
    pub event_type: EventKind,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub test_run_id: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
    #[serde(skip)]
    pub raw: Value,
}

/// `PerformanceResult`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PerformanceResult {
    pub duration: Option<f64>,
    pub threshold: Option<f64>,
    pub is_successful: Option<bool>,
}

/// `PlatformSummary`: whether the user got logged on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlatformSummary {
    pub login_successful: Option<bool>,
    pub login_performance: Option<PerformanceResult>,
    pub latency_performance: Option<PerformanceResult>,
}

/// `ApplicationSummary`: one app of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSummary {
    pub application_id: Option<String>,
    pub application_name: Option<String>,
    pub result_status: Option<AppResultStatus>,
    pub app_execution_successful: Option<bool>,
    pub performance_successful: Option<bool>,
}

/// `ApplicationTestData`: one run in an overview.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunData {
    pub test_run_id: String,
    pub test_name: Option<String>,
    pub is_base: bool,
    pub counter: Option<u32>,
    pub state: Option<RunState>,
    pub test_result: Option<RunResult>,
    pub platform_summary: Option<PlatformSummary>,
    #[serde(deserialize_with = "null_default")]
    pub application_summaries: Vec<AppSummary>,
}

/// `ApplicationTestResultOverview`: the base run and the runs compared with it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOverview {
    #[serde(default, deserialize_with = "null_default")]
    pub application_test_result: Vec<RunData>,
    #[serde(skip)]
    pub raw: Value,
}

impl RunOverview {
    pub fn run(&self, run_id: &str) -> Option<&RunData> {
        self.application_test_result.iter().find(|r| r.test_run_id.eq_ignore_ascii_case(run_id))
    }
}

/// `TargetHost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHost {
    pub endpoint: String,
    pub enabled: bool,
}

/// `Resolution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// The connectors of the spec's `Connector` family a ring can be pointed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Connector {
    /// `RdpConnector` ("Microsoft RDS"): connect straight to session hosts.
    #[serde(rename = "Rdp", rename_all = "camelCase")]
    Rdp {
        host_list: Vec<TargetHost>,
        suppress_cert_warn: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_resolution: Option<Resolution>,
    },
    /// `CustomConnector`: a launcher script (an AVD client with a feed URL, for instance).
    #[serde(rename = "Custom", rename_all = "camelCase")]
    Custom {
        host: String,
        command_line: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// `DesktopConnector`: the launcher's own desktop.
    #[serde(rename = "Desktop")]
    Desktop,
}

/// `ConnectionResourcesUpdate`: what the gate sets on the test. A field left `None` is left as the test has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionResourcesUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<Connector>,
    /// Launcher group ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher_groups: Option<Vec<String>>,
    /// Account group ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_groups: Option<Vec<String>>,
}

impl ConnectionResourcesUpdate {
    /// Point the test straight at a ring's session hosts over RDP.
    pub fn rdp_hosts<I, S>(hosts: I) -> ConnectionResourcesUpdate
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectionResourcesUpdate {
            connector: Some(Connector::Rdp {
                host_list: hosts.into_iter().map(|h| TargetHost { endpoint: h.into(), enabled: true }).collect(),
                suppress_cert_warn: true,
                resource: None,
                gateway: None,
                display_resolution: None,
            }),
            launcher_groups: None,
            account_groups: None,
        }
    }
}
