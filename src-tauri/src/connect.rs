//! Which tenant to talk to: the built-in simulated tenant (demo, the default) or a real one through the Azure CLI.

use std::sync::Arc;

use ringmaster_azure::{
    http_client, simulated_tenant_client, simulated_user_client, ArmClient, AzureCliSource, Cloud, RetryPolicy,
};
use ringmaster_engine::{ExecutorConfig, TenantConnection};
use ringmaster_sim::{SimConfig, SimHandle};

pub enum Mode {
    Demo,
    AzureCli {
        cloud: Cloud,
        tenant_id: Option<String>,
    },
    /// A person signs in interactively (browser or device code); the session is kept sealed between runs.
    Entra {
        cloud: Cloud,
        client_id: String,
    },
}

impl Mode {
    /// `RINGMASTER_TENANT=demo|entra|azure-cli` (default demo), `RINGMASTER_CLOUD=AzureCloud|AzureUSGovernment|AzureChinaCloud`,
    /// `RINGMASTER_TENANT_ID` to pick a tenant of the CLI account.
    pub fn from_env() -> Result<Mode, String> {
        match std::env::var("RINGMASTER_TENANT").unwrap_or_else(|_| "demo".into()).as_str() {
            "demo" | "" => Ok(Mode::Demo),
            "azure-cli" => {
                Ok(Mode::AzureCli { cloud: cloud_from_env()?, tenant_id: std::env::var("RINGMASTER_TENANT_ID").ok() })
            }
            "entra" => {
                let cloud = cloud_from_env()?;
                let client_id = std::env::var("RINGMASTER_CLIENT_ID")
                    .ok()
                    .filter(|c| !c.trim().is_empty())
                    .unwrap_or_else(|| ringmaster_engine::session::DEFAULT_CLIENT_ID.to_string());
                Ok(Mode::Entra { cloud, client_id })
            }
            other => Err(format!("RINGMASTER_TENANT '{other}' is not known: use demo, entra or azure-cli")),
        }
    }

    pub fn database_file(&self) -> &'static str {
        match self {
            Mode::Demo => "ringmaster-demo.db",
            Mode::AzureCli { .. } | Mode::Entra { .. } => "ringmaster.db",
        }
    }

    /// How a person signs in, in the interactive mode.
    pub fn sign_in_config(&self) -> Option<ringmaster_engine::SignInConfig> {
        match self {
            Mode::Entra { cloud, client_id } => Some(ringmaster_engine::SignInConfig {
                cloud: cloud.clone(),
                client_id: client_id.clone(),
                ca_pem: None,
                policy: RetryPolicy::default(),
            }),
            _ => None,
        }
    }
}

/// `RINGMASTER_CLOUD=AzureCloud|AzureUSGovernment|AzureChinaCloud` (default AzureCloud).
fn cloud_from_env() -> Result<Cloud, String> {
    let cloud_name = std::env::var("RINGMASTER_CLOUD").unwrap_or_else(|_| "AzureCloud".into());
    Cloud::by_name(&cloud_name).ok_or_else(|| {
        format!("RINGMASTER_CLOUD '{cloud_name}' is not a known cloud: use AzureCloud, AzureUSGovernment or AzureChinaCloud")
    })
}

pub async fn connect(mode: &Mode) -> Result<(TenantConnection, Option<SimHandle>), String> {
    match mode {
        Mode::Entra { .. } => Err("sign in to connect".into()),
        Mode::Demo => {
            // The demo tenant's clock runs 60x by default: a host replacement takes seconds, a rollout minutes.
            // RINGMASTER_DEMO_TIME_SCALE changes it (the end-to-end test runs faster).
            let time_scale = std::env::var("RINGMASTER_DEMO_TIME_SCALE")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && (1.0..=100_000.0).contains(v))
                .unwrap_or(60.0);
            let config = SimConfig { time_scale, ..SimConfig::default() };
            let sim = ringmaster_sim::start(config).await.map_err(|e| e.to_string())?;
            let ready = sim.ready.clone();
            let ca = std::fs::read(&ready.ca_cert).map_err(|e| format!("sim CA: {e}"))?;
            // The demo acts as the simulated tenant's test user, signed in through the same authorization code +
            // PKCE flow a real tenant uses (the sim consents for them), so actions and sign-offs name a person.
            // RINGMASTER_DEMO_IDENTITY=app uses the sim's service principal instead.
            let client = if std::env::var("RINGMASTER_DEMO_IDENTITY").as_deref() == Ok("app") {
                simulated_tenant_client(
                    &ready.arm,
                    &ready.login,
                    &ca,
                    &ready.tenant_id,
                    &ready.client_id,
                    &ready.client_secret,
                    RetryPolicy::default(),
                )
            } else {
                simulated_user_client(
                    &ready.arm,
                    &ready.login,
                    &ca,
                    &ready.tenant_id,
                    &ready.public_client_id,
                    RetryPolicy::default(),
                )
                .await
            }
            .map_err(|e| e.to_string())?;
            let principal = client.principal().await;
            // The demo tenant's own Login Enterprise appliance: its token lives only in this process.
            let login_enterprise = Some(ringmaster_engine::LoginEnterpriseConnection {
                base_url: ready.le.clone(),
                token: ready.le_token.clone(),
                ca_pem: std::fs::read(&ready.le_ca_cert).ok(),
                default_test: Some("AVD smoke".into()),
            });
            Ok((
                TenantConnection {
                    client,
                    mode: "demo".into(),
                    tenant_id: ready.tenant_id.clone(),
                    tenant_name: ready.tenant_name.clone(),
                    cloud: "Simulated tenant (built in)".into(),
                    authority_host: ready.login.clone(),
                    executor: ExecutorConfig::for_time_scale(time_scale),
                    build: ringmaster_engine::BuildConfig::for_time_scale(time_scale),
                    principal,
                    login_enterprise,
                },
                Some(sim),
            ))
        }
        Mode::AzureCli { cloud, tenant_id } => {
            let http = http_client(None).map_err(|e| e.to_string())?;
            let cred = AzureCliSource::new(tenant_id.clone()).map_err(|e| e.to_string())?;
            let client =
                ArmClient::new(http, &cloud.arm_endpoint, &cloud.arm_scope, Arc::new(cred), RetryPolicy::default())
                    .map_err(|e| e.to_string())?;
            let principal = client.principal().await;
            // Until the appliance token moves into the secret store (issue 6): from the environment, never stored.
            let login_enterprise = match (std::env::var("RINGMASTER_LE_URL"), std::env::var("RINGMASTER_LE_TOKEN")) {
                (Ok(base_url), Ok(token)) if !base_url.is_empty() && !token.is_empty() => {
                    Some(ringmaster_engine::LoginEnterpriseConnection {
                        base_url,
                        token,
                        ca_pem: None,
                        default_test: None,
                    })
                }
                _ => None,
            };
            Ok((
                TenantConnection {
                    client,
                    mode: "azure-cli".into(),
                    tenant_id: tenant_id.clone().unwrap_or_else(|| "(Azure CLI default tenant)".into()),
                    tenant_name: "Azure CLI account".into(),
                    cloud: cloud.name.clone(),
                    authority_host: cloud.authority_host.clone(),
                    executor: ExecutorConfig::default(),
                    build: ringmaster_engine::BuildConfig::default(),
                    principal,
                    login_enterprise,
                },
                None,
            ))
        }
    }
}
