//! A pool's deployment profile, as the admin sees and edits it: what new session hosts are built with (read off one
//! of the pool's hosts the first time), reused by every rollout of the pool so only the image changes.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::rollout::DeploymentProfile;
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
    /// Read-only here: where the pool is, its security type and how hosts join.
    pub location: String,
    pub security_type: Option<String>,
    pub join_type: String,
}

fn settings_of(p: &DeploymentProfile) -> ProfileSettings {
    ProfileSettings {
        vm_size: p.vm_size.clone(),
        zones: p.zones.clone().unwrap_or_default(),
        os_disk_type: p.os_disk_type.clone(),
        os_disk_size_gb: p.os_disk_size_gb.map(|s| s.min(u32::MAX as u64) as u32),
        subnet_id: p.subnet_id.clone(),
        location: p.location.clone(),
        security_type: p.security_profile.as_ref().and_then(|s| s["securityType"].as_str()).map(str::to_string),
        join_type: p.join_type.clone(),
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
    crate::pipeline::validate_subnet_id(&s.subnet_id)
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
        Ok(settings_of(&profile))
    }

    /// Save edits to the pool's profile: the next rollout of the pool builds hosts with them.
    pub async fn set_pool_profile(
        &self,
        host_pool_id: &str,
        edits: &ProfileSettings,
    ) -> Result<ProfileSettings, EngineError> {
        validate_profile(edits).map_err(EngineError::InvalidInput)?;
        self.pool_profile(host_pool_id).await?;
        let mut profile: DeploymentProfile = self
            .store
            .profile(host_pool_id)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .ok_or_else(|| EngineError::InvalidInput("the pool has no deployment profile".into()))?;
        let before = settings_of(&profile);
        profile.vm_size = edits.vm_size.trim().to_string();
        profile.zones = (!edits.zones.is_empty()).then(|| edits.zones.clone());
        profile.os_disk_type = edits.os_disk_type.clone();
        profile.os_disk_size_gb = edits.os_disk_size_gb.map(u64::from);
        profile.subnet_id = edits.subnet_id.trim().to_string();
        self.audit(
            "profile.save",
            host_pool_id.rsplit('/').next().unwrap_or(host_pool_id),
            serde_json::json!({"hostPoolId": host_pool_id, "before": before, "after": settings_of(&profile)}),
        )?;
        self.store.save_profile(
            host_pool_id,
            &serde_json::to_string(&profile).unwrap_or_default(),
            &crate::now_rfc3339(),
        )?;
        Ok(settings_of(&profile))
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
            security_type: Some("TrustedLaunch".into()),
            join_type: "AzureAD".into(),
        }
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
