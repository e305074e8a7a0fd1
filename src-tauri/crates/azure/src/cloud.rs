//! Azure clouds: where to sign in, where ARM is, and the token scope for ARM.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cloud {
    pub name: String,
    /// Entra authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// ARM endpoint, e.g. `https://management.azure.com`.
    pub arm_endpoint: String,
    /// Scope for ARM (and Resource Graph) tokens.
    pub arm_scope: String,
}

impl Cloud {
    pub fn public() -> Cloud {
        Cloud {
            name: "AzureCloud".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            arm_endpoint: "https://management.azure.com".into(),
            arm_scope: "https://management.azure.com/.default".into(),
        }
    }
    pub fn us_government() -> Cloud {
        Cloud {
            name: "AzureUSGovernment".into(),
            authority_host: "https://login.microsoftonline.us".into(),
            arm_endpoint: "https://management.usgovcloudapi.net".into(),
            arm_scope: "https://management.usgovcloudapi.net/.default".into(),
        }
    }
    pub fn china() -> Cloud {
        Cloud {
            name: "AzureChinaCloud".into(),
            authority_host: "https://login.chinacloudapi.cn".into(),
            arm_endpoint: "https://management.chinacloudapi.cn".into(),
            arm_scope: "https://management.chinacloudapi.cn/.default".into(),
        }
    }
    /// The simulated tenant: its own hosts, ARM's real audience.
    pub fn simulated(authority_host: &str, arm_endpoint: &str) -> Cloud {
        Cloud {
            name: "Simulated".into(),
            authority_host: authority_host.trim_end_matches('/').into(),
            arm_endpoint: arm_endpoint.trim_end_matches('/').into(),
            arm_scope: "https://management.azure.com/.default".into(),
        }
    }
    /// Entra v2 authorization endpoint for `tenant` (an id, a domain, or `organizations`).
    pub fn authorize_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.authority_host.trim_end_matches('/'))
    }
    /// Entra v2 token endpoint for `tenant`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host.trim_end_matches('/'))
    }
    /// Entra v2 device authorization endpoint for `tenant`.
    pub fn device_code_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/devicecode", self.authority_host.trim_end_matches('/'))
    }
    /// By the names `az cloud list` uses.
    pub fn by_name(name: &str) -> Option<Cloud> {
        match name.to_ascii_lowercase().as_str() {
            "azurecloud" | "public" => Some(Cloud::public()),
            "azureusgovernment" | "usgov" => Some(Cloud::us_government()),
            "azurechinacloud" | "china" => Some(Cloud::china()),
            _ => None,
        }
    }
}

/// The api-version the app uses per resource provider: the versions of the specs it is checked against.
pub mod api_version {
    pub const SUBSCRIPTIONS: &str = "2022-12-01";
    pub const RESOURCES: &str = "2024-07-01";
    pub const COMPUTE: &str = "2024-07-01";
    pub const GALLERY: &str = "2024-03-03";
    pub const DISKS: &str = "2024-03-02";
    pub const DESKTOP_VIRTUALIZATION: &str = "2024-04-03";
    pub const RESOURCE_GRAPH: &str = "2024-04-01";
}
