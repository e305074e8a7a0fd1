//! The appliance's event types (`EventType` in the v7 spec) and what each means for the gate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an event says about the image under test, as far as the gate is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventClass {
    /// The launcher or the connection to the host failed: the run says nothing about the image.
    LauncherOrConnection,
    /// The appliance's own resources (accounts, licenses, database) failed: again nothing about the image.
    Appliance,
    /// The run itself was cancelled or failed inside the appliance.
    Run,
    /// The user could not log on, or the session failed.
    Login,
    /// An application failed or was abandoned.
    Application,
    /// A performance threshold was exceeded: reported, not gated.
    Performance,
    /// Everything else (run started/finished, screenshots, logs, scripts' own events, types this client does not
    /// know yet).
    Informational,
}

macro_rules! event_kinds {
    ($($variant:ident => $api:literal : $class:ident),* $(,)?) => {
        /// One value of the spec's `EventType` enum; `Other` keeps a value a newer appliance may send.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($variant,)*
            Other(String),
        }

        /// Every `EventType` value of the v7 spec, in the spec's order.
        pub const EVENT_TYPES: &[&str] = &[$($api),*];

        impl EventKind {
            pub fn from_api(s: &str) -> EventKind {
                match s {
                    $($api => EventKind::$variant,)*
                    other => EventKind::Other(other.to_string()),
                }
            }

            pub fn as_api(&self) -> &str {
                match self {
                    $(EventKind::$variant => $api,)*
                    EventKind::Other(s) => s,
                }
            }

            pub fn class(&self) -> EventClass {
                match self {
                    $(EventKind::$variant => EventClass::$class,)*
                    EventKind::Other(_) => EventClass::Informational,
                }
            }
        }
    };
}

// The classes are the gate's reading of each type's name and Login Enterprise's documentation of it: anything that
// stops the session from reaching the host, or is the appliance's own shortage, must not blame the image.
event_kinds! {
    LauncherOffline => "launcherOffline": LauncherOrConnection,
    ConnectionInitializationTimeout => "connectionInitializationTimeout": LauncherOrConnection,
    LoginFailure => "loginFailure": Login,
    SessionFailure => "sessionFailure": Login,
    ApplicationFailure => "applicationFailure": Application,
    LauncherCapacityExceeded => "launcherCapacityExceeded": LauncherOrConnection,
    AccountCapacityExceeded => "accountCapacityExceeded": Appliance,
    ApplicationThresholdExceeded => "applicationThresholdExceeded": Performance,
    EmailFailure => "emailFailure": Informational,
    SessionDiscoveryError => "sessionDiscoveryError": LauncherOrConnection,
    ScriptEvent => "scriptEvent": Informational,
    LatencyThresholdExceeded => "latencyThresholdExceeded": Performance,
    LoginTimeThresholdExceeded => "loginTimeThresholdExceeded": Performance,
    LatencyMeasurementFailed => "latencyMeasurementFailed": Informational,
    LoginTimeMeasurementFailed => "loginTimeMeasurementFailed": Informational,
    EmailRequest => "emailRequest": Informational,
    AccountDisabled => "accountDisabled": Appliance,
    SessionRequestEndedBeforeEngineBecameOnline => "sessionRequestEndedBeforeEngineBecameOnline": LauncherOrConnection,
    LicenseSessionLimit => "licenseSessionLimit": Appliance,
    TestRunStarted => "testRunStarted": Informational,
    TestRunCancelled => "testRunCancelled": Run,
    TestRunFailed => "testRunFailed": Run,
    TestRunFinished => "testRunFinished": Informational,
    AppExecutionAbandoned => "appExecutionAbandoned": Application,
    EnginePaused => "enginePaused": Informational,
    EngineResumed => "engineResumed": Informational,
    RemoteSessionDisconnected => "remoteSessionDisconnected": LauncherOrConnection,
    ScriptScreenshot => "scriptScreenshot": Informational,
    ScreenshotFailure => "screenshotFailure": Informational,
    DataRetentionStarted => "dataRetentionStarted": Informational,
    DataRetentionFinished => "dataRetentionFinished": Informational,
    DataRetentionFailed => "dataRetentionFailed": Informational,
    DatabaseFailure => "databaseFailure": Appliance,
    EuxInitializationFailure => "euxInitializationFailure": Informational,
    EuxExecutionFailure => "euxExecutionFailure": Informational,
    EngineLogs => "engineLogs": Informational,
    LauncherLogs => "launcherLogs": Informational,
    CustomUserSessionEvent => "customUserSessionEvent": Informational,
}

impl EventKind {
    /// The event types that make a run INCONCLUSIVE because the launcher or the connection failed.
    pub fn launcher_or_connection() -> Vec<EventKind> {
        EVENT_TYPES
            .iter()
            .map(|s| EventKind::from_api(s))
            .filter(|k| k.class() == EventClass::LauncherOrConnection)
            .collect()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_api())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_api())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(EventKind::from_api(&s))
    }
}
