//! A pool's deployment profile, as the admin sees and edits it: what new session hosts are built with (read off one
//! of the pool's hosts the first time), reused by every rollout of the pool so only the image changes.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::rollout::{DeploymentProfile, DomainJoin, DOMAIN_JOIN_SECRETS};
use crate::{Engine, EngineError};

/// The managed disk types a session host's OS disk can use.
pub const OS_DISK_TYPES: &[&str] =
    &["Premium_LRS", "Premium_ZRS", "StandardSSD_LRS", "StandardSSD_ZRS", "Standard_LRS"];

/// The editable part of a deployment profile, and what is shown beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSettings {
    pub vm_size: String,
    /// Availability zones new hosts are spread over; empty = no zone.
    pub zones: Vec<String>,
    pub os_disk_type: String,
    /// Empty = the image's size.
    pub os_disk_size_gb: Option<u32>,
    pub subnet_id: String,
    /// Read-only here: where the pool is.
    pub location: String,
    /// `Standard`, `TrustedLaunch` or `ConfidentialVM` (kept only when the hosts already are confidential VMs).
    pub security_type: String,
    /// `AzureAD` (Microsoft Entra join) or `ActiveDirectory` (AD DS domain join).
    pub join_type: String,
    /// For `ActiveDirectory`: the domain's DNS name, the OU for computer accounts (empty = the default container)
    /// and the joining account (`user@domain` or `DOMAIN\user`).
    pub domain: String,
    pub ou_path: String,
    pub join_user: String,
    /// Write-only: a new password for the joining account, sealed in the secret store. Empty keeps the stored one;
    /// never sent back.
    pub join_password: Option<String>,
    /// Whether a password for the joining account is stored.
    pub join_password_stored: bool,
}

/// The security types a profile can choose (a confidential VM needs disk encryption settings Ringmaster does not
/// write, so it is kept when read from a VM but not chosen).
pub const SECURITY_TYPES: &[&str] = &["Standard", "TrustedLaunch"];
pub const JOIN_TYPES: &[&str] = &["AzureAD", "ActiveDirectory"];

fn settings_of(p: &DeploymentProfile, join_password_stored: bool) -> ProfileSettings {
    let join = p.domain_join.clone().unwrap_or(DomainJoin {
        domain: String::new(),
        ou_path: String::new(),
        user: String::new(),
    });
    ProfileSettings {
        vm_size: p.vm_size.clone(),
        zones: p.zones.clone().unwrap_or_default(),
        os_disk_type: p.os_disk_type.clone(),
        os_disk_size_gb: p.os_disk_size_gb.map(|s| s.min(u32::MAX as u64) as u32),
        subnet_id: p.subnet_id.clone(),
        location: p.location.clone(),
        security_type: p
            .security_profile
            .as_ref()
            .and_then(|s| s["securityType"].as_str())
            .unwrap_or("Standard")
            .to_string(),
        join_type: p.join_type.clone(),
        domain: join.domain,
        ou_path: join.ou_path,
        join_user: join.user,
        join_password: None,
        join_password_stored,
    }
}

/// Check edits with messages that say what to fix.
pub fn validate_profile(s: &ProfileSettings) -> Result<(), String> {
    let size = s.vm_size.trim();
    if !(size.starts_with("Standard_") || size.starts_with("Basic_"))
        || size.len() > 64
        || !size.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("'{size}' is not an Azure VM size (for example Standard_D4s_v5)"));
    }
    if !OS_DISK_TYPES.contains(&s.os_disk_type.as_str()) {
        return Err(format!("the OS disk type is one of {}", OS_DISK_TYPES.join(", ")));
    }
    if let Some(gb) = s.os_disk_size_gb {
        if !(30..=4095).contains(&gb) {
            return Err("the OS disk size is 30 to 4,095 GB (or empty for the image's size)".into());
        }
    }
    if let Some(z) = s.zones.iter().find(|z| !["1", "2", "3"].contains(&z.as_str())) {
        return Err(format!("'{z}' is not an availability zone: use 1, 2 and 3"));
    }
    if !SECURITY_TYPES.contains(&s.security_type.as_str()) && s.security_type != "ConfidentialVM" {
        return Err(format!("the security type is one of {}", SECURITY_TYPES.join(", ")));
    }
    if !JOIN_TYPES.contains(&s.join_type.as_str()) {
        return Err("hosts join Microsoft Entra ID (AzureAD) or Active Directory (ActiveDirectory)".into());
    }
    if s.join_type == "ActiveDirectory" {
        let domain = s.domain.trim();
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !domain.contains('.') || domain.len() > 253 || !labels_ok {
            return Err(format!("'{domain}' is not a domain's DNS name (for example corp.contoso.com)"));
        }
        let user = s.join_user.trim();
        let upn = user.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
        let down_level = user.split_once('\\').is_some_and(|(d, u)| !d.is_empty() && !u.is_empty());
        if !(upn || down_level) || user.chars().any(char::is_whitespace) {
            return Err("the joining account is user@domain or DOMAIN\\user".into());
        }
        let ou = s.ou_path.trim();
        if !ou.is_empty() && !ou.to_ascii_uppercase().contains("DC=") {
            return Err(format!(
                "'{ou}' is not an OU's distinguished name (for example OU=AVD,DC=corp,DC=contoso,DC=com)"
            ));
        }
        if !s.join_password_stored && s.join_password.as_deref().is_none_or(str::is_empty) {
            return Err("enter the joining account's password: none is stored for this pool".into());
        }
    }
    crate::pipeline::validate_subnet_id(&s.subnet_id)
}

/// The security profile a security type puts on a new VM (a confidential VM's is kept as read).
fn security_profile_for(kind: &str, current: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    match kind {
        "TrustedLaunch" => Some(serde_json::json!({
            "securityType": "TrustedLaunch",
            "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}
        })),
        "ConfidentialVM" => current.cloned(),
        _ => None,
    }
}

impl Engine {
    /// The pool's deployment profile: the saved one, or read now off one of its hosts' VMs.
    pub async fn pool_profile(&self, host_pool_id: &str) -> Result<ProfileSettings, EngineError> {
        crate::pipeline::check_id(host_pool_id, ringmaster_azure::resource_id::HOST_POOL)?;
        let sample = self
            .store
            .hosts_of_pool(host_pool_id)?
            .into_iter()
            .find_map(|l| l.host.vm_id.filter(|v| !v.is_empty()))
            .ok_or_else(|| {
                EngineError::InvalidInput("the pool has no session host to read a profile from; refresh first".into())
            })?;
        let profile = self.runner()?.ensure_profile(host_pool_id, &sample).await?;
        Ok(settings_of(&profile, self.join_password_stored(host_pool_id)))
    }

    fn join_password_stored(&self, host_pool_id: &str) -> bool {
        self.secret_store()
            .ok()
            .and_then(|s| s.get(DOMAIN_JOIN_SECRETS, &host_pool_id.to_ascii_lowercase()).ok().flatten())
            .is_some()
    }

    /// Save edits to the pool's profile: the next rollout of the pool builds hosts with them.
    pub async fn set_pool_profile(
        &self,
        host_pool_id: &str,
        edits: &ProfileSettings,
    ) -> Result<ProfileSettings, EngineError> {
        let mut edits = edits.clone();
        edits.join_password_stored = self.join_password_stored(host_pool_id);
        validate_profile(&edits).map_err(EngineError::InvalidInput)?;
        self.pool_profile(host_pool_id).await?;
        let mut profile: DeploymentProfile = self
            .store
            .profile(host_pool_id)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .ok_or_else(|| EngineError::InvalidInput("the pool has no deployment profile".into()))?;
        let before = settings_of(&profile, edits.join_password_stored);
        if edits.security_type == "ConfidentialVM"
            && profile.security_profile.as_ref().and_then(|s| s["securityType"].as_str()) != Some("ConfidentialVM")
        {
            return Err(EngineError::InvalidInput(
                "a confidential VM needs disk encryption settings Ringmaster does not write: read the profile from a \
                 confidential VM instead"
                    .into(),
            ));
        }
        // Sealed before anything is saved: a profile that says AD DS never waits on a password that was lost.
        let new_password = edits.join_password.as_deref().filter(|p| !p.is_empty());
        if edits.join_type == "ActiveDirectory" {
            if let Some(password) = new_password {
                self.secret_store()?
                    .put(DOMAIN_JOIN_SECRETS, &host_pool_id.to_ascii_lowercase(), password)
                    .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
            }
        }
        profile.security_profile = security_profile_for(&edits.security_type, profile.security_profile.as_ref());
        profile.join_type = edits.join_type.clone();
        profile.domain_join = (edits.join_type == "ActiveDirectory").then(|| DomainJoin {
            domain: edits.domain.trim().to_string(),
            ou_path: edits.ou_path.trim().to_string(),
            user: edits.join_user.trim().to_string(),
        });
        profile.vm_size = edits.vm_size.trim().to_string();
        profile.zones = (!edits.zones.is_empty()).then(|| edits.zones.clone());
        profile.os_disk_type = edits.os_disk_type.clone();
        profile.os_disk_size_gb = edits.os_disk_size_gb.map(u64::from);
        profile.subnet_id = edits.subnet_id.trim().to_string();
        self.audit(
            "profile.save",
            host_pool_id.rsplit('/').next().unwrap_or(host_pool_id),
            serde_json::json!({
                "hostPoolId": host_pool_id,
                "before": before,
                "after": settings_of(&profile, self.join_password_stored(host_pool_id)),
                "joinPasswordChanged": new_password.is_some() && edits.join_type == "ActiveDirectory",
            }),
        )?;
        self.store.save_profile(
            host_pool_id,
            &serde_json::to_string(&profile).unwrap_or_default(),
            &crate::now_rfc3339(),
        )?;
        Ok(settings_of(&profile, self.join_password_stored(host_pool_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ProfileSettings {
        ProfileSettings {
            vm_size: "Standard_D4s_v5".into(),
            zones: vec!["1".into(), "2".into()],
            os_disk_type: "Premium_LRS".into(),
            os_disk_size_gb: Some(128),
            subnet_id: "/subscriptions/8f1c2b9e-4a7d-4c1e-9b2a-6d3e5f7a8b01/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/snet-avd".into(),
            location: "westeurope".into(),
            security_type: "TrustedLaunch".into(),
            join_type: "AzureAD".into(),
            domain: String::new(),
            ou_path: String::new(),
            join_user: String::new(),
            join_password: None,
            join_password_stored: false,
        }
    }

    #[test]
    fn an_ad_ds_join_is_checked_field_by_field() {
        let ad = || ProfileSettings {
            join_type: "ActiveDirectory".into(),
            domain: "corp.contoso.com".into(),
            ou_path: "OU=AVD,DC=corp,DC=contoso,DC=com".into(),
            join_user: "CORP\\svc-join".into(),
            join_password_stored: true,
            ..ok()
        };
        assert!(validate_profile(&ad()).is_ok());
        assert!(validate_profile(&ProfileSettings { ou_path: String::new(), ..ad() }).is_ok(), "default container");
        let bad = |f: fn(&mut ProfileSettings)| {
            let mut s = ad();
            f(&mut s);
            validate_profile(&s).unwrap_err()
        };
        assert!(bad(|s| s.domain = "contoso".into()).contains("DNS name"));
        assert!(bad(|s| s.domain = "corp..contoso.com".into()).contains("DNS name"));
        assert!(bad(|s| s.join_user = "svc-join".into()).contains("user@domain"));
        assert!(bad(|s| s.join_user = "svc join@corp.contoso.com".into()).contains("user@domain"));
        assert!(bad(|s| s.ou_path = "AVD hosts".into()).contains("distinguished name"));
        assert!(bad(|s| s.join_password_stored = false).contains("password"));
        assert!(bad(|s| s.join_type = "Workgroup".into()).contains("Active Directory"));
        assert!(bad(|s| s.security_type = "Secure".into()).contains("security type"));
    }

    #[test]
    fn profile_edits_are_checked_with_messages_that_say_what_to_fix() {
        assert!(validate_profile(&ok()).is_ok());
        let bad = |f: fn(&mut ProfileSettings)| {
            let mut s = ok();
            f(&mut s);
            validate_profile(&s).unwrap_err()
        };
        assert!(bad(|s| s.vm_size = "D4s_v5".into()).contains("VM size"));
        assert!(bad(|s| s.vm_size = "Standard_D4s_v5/../x".into()).contains("VM size"));
        assert!(bad(|s| s.os_disk_type = "UltraSSD_LRS".into()).contains("OS disk type"));
        assert!(bad(|s| s.os_disk_size_gb = Some(10)).contains("30 to 4,095"));
        assert!(bad(|s| s.zones = vec!["4".into()]).contains("availability zone"));
        assert!(bad(|s| s.subnet_id = "/subscriptions/x/../y".into()).to_lowercase().contains("subnet"));
    }
}
