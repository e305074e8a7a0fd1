//! Which tenant to talk to: the built-in simulated tenant (demo, the default) or a real one through the Azure CLI.

use std::sync::Arc;

use ringmaster_azure::{
    http_client, simulated_tenant_client, simulated_user_client, ArmClient, AzureCliSource, ClientSecretCredential,
    Cloud, RetryPolicy,
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
    /// Automation: a service principal with a client secret (from `RINGMASTER_CLIENT_SECRET`, never stored).
    ServicePrincipal {
        cloud: Cloud,
        tenant_id: String,
        client_id: String,
    },
}

impl Mode {
    /// `RINGMASTER_TENANT=demo|entra|azure-cli|service-principal` (default demo),
    /// `RINGMASTER_CLOUD=AzureCloud|AzureUSGovernment|AzureChinaCloud`, `RINGMASTER_TENANT_ID` (the CLI account's
    /// tenant, or the service principal's), `RINGMASTER_CLIENT_ID` (the app registration to sign in as).
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
            "service-principal" => {
                let need =
                    |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty()).ok_or(format!("{k} is not set"));
                Ok(Mode::ServicePrincipal {
                    cloud: cloud_from_env()?,
                    tenant_id: need("RINGMASTER_TENANT_ID")?,
                    client_id: need("RINGMASTER_CLIENT_ID")?,
                })
            }
            other => Err(format!(
                "RINGMASTER_TENANT '{other}' is not known: use demo, entra, azure-cli or service-principal"
            )),
        }
    }

    pub fn database_file(&self) -> &'static str {
        match self {
            Mode::Demo => "ringmaster-demo.db",
            Mode::AzureCli { .. } | Mode::Entra { .. } | Mode::ServicePrincipal { .. } => "ringmaster.db",
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
            // Users log on and off over the day, as in a real tenant: drains meet sessions to wait for.
            let config = SimConfig { time_scale, user_activity: true, ..SimConfig::default() };
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
            let cred = AzureCliSource::new(tenant_id.clone()).map_err(|e| e.to_string())?;
            let tenant = tenant_id.clone().unwrap_or_else(|| "(Azure CLI default tenant)".into());
            real_tenant(cloud, Arc::new(cred), "azure-cli", tenant, "Azure CLI account").await
        }
        Mode::ServicePrincipal { cloud, tenant_id, client_id } => {
            // The secret comes from the environment (a pipeline's secret variable) and is never stored.
            let secret = std::env::var("RINGMASTER_CLIENT_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or("RINGMASTER_CLIENT_SECRET is not set: the service principal needs its client secret")?;
            let http = http_client(None).map_err(|e| e.to_string())?;
            let cred = ClientSecretCredential::new(http, &cloud.authority_host, tenant_id, client_id, &secret);
            real_tenant(cloud, Arc::new(cred), "service-principal", tenant_id.clone(), "Service principal").await
        }
    }
}

/// A real tenant through `credential`; a Login Enterprise appliance from the environment if one is given (else the
/// one stored in Settings is used).
async fn real_tenant(
    cloud: &Cloud,
    credential: Arc<dyn ringmaster_azure::TokenSource>,
    mode: &str,
    tenant_id: String,
    tenant_name: &str,
) -> Result<(TenantConnection, Option<SimHandle>), String> {
    let http = http_client(None).map_err(|e| e.to_string())?;
    let client = ArmClient::new(http, &cloud.arm_endpoint, &cloud.arm_scope, credential, RetryPolicy::default())
        .map_err(|e| e.to_string())?;
    let principal = client.principal().await;
    let login_enterprise = match (std::env::var("RINGMASTER_LE_URL"), std::env::var("RINGMASTER_LE_TOKEN")) {
        (Ok(base_url), Ok(token)) if !base_url.is_empty() && !token.is_empty() => {
            Some(ringmaster_engine::LoginEnterpriseConnection { base_url, token, ca_pem: None, default_test: None })
        }
        _ => None,
    };
    Ok((
        TenantConnection {
            client,
            mode: mode.into(),
            tenant_id,
            tenant_name: tenant_name.into(),
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
