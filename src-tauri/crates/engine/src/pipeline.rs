//! The engine's build and release side: golden masters, script collections and their runs, captures, the
//! release page and retention. The heavy lifting is in [`crate::build`] (executors) and [`crate::release`]
//! (pure judgement); this gathers the evidence from the store and Azure and hands it over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ringmaster_azure::resource_id;
use ringmaster_azure::{inventory, ops};
use ringmaster_store::{CollectionRecord, MasterRecord};
use time::OffsetDateTime;

use crate::build::{self, name_of, resource_group_id, Builds, RUN_COMMAND_PREFIX};
use crate::release::{self, CaptureEvidence, ChecklistEvidence, PoolCapacity, TestPoolEvidence};
use crate::release_model::*;
use crate::rings::{image_versions, ring_display_name, version_row};
use crate::rollout::{self, effective_capacity};
use crate::{Engine, EngineError, ImageVersionRow, RolloutPolicy};

pub const MASTER_TAG: &str = "ringmaster-golden-master";
pub const CAPTURE_SUBNET_TAG: &str = "ringmaster-capture-subnet";

fn now_rfc3339() -> String {
    crate::now_rfc3339()
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{v}/subnets/{n}`, checked.
pub fn validate_subnet_id(id: &str) -> Result<(), String> {
    resource_id::parse_kind(id, resource_id::SUBNET)
        .map(|_| ())
        .map_err(|e| format!("'{}' is not a subnet resource id: {e}", id.chars().take(200).collect::<String>()))
}

/// An id from the UI or a file, checked before it becomes part of an ARM URL.
pub(crate) fn check_id(id: &str, kind: &str) -> Result<(), EngineError> {
    resource_id::parse_kind(id, kind).map(|_| ()).map_err(|e| EngineError::InvalidInput(e.to_string()))
}

/// A tenant or object id: a GUID, nothing else.
pub(crate) fn check_guid(id: &str) -> Result<(), EngineError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidInput(format!(
            "'{}' is not a tenant id (a GUID)",
            id.chars().take(60).collect::<String>()
        )))
    }
}

impl Engine {
    pub(crate) fn builds(&self) -> Result<Arc<Builds>, EngineError> {
        self.builds.read().ok().and_then(|b| b.clone()).ok_or(EngineError::NotConnected)
    }

    pub(crate) fn principal(&self) -> String {
        self.connection().map(|c| c.principal.clone()).unwrap_or_else(|_| "unknown".into())
    }

    // ---------------------------------------------------------------- golden masters

    /// Registered masters with their live power state, plus VMs Azure tags as masters that are not registered.
    pub async fn golden_masters(&self) -> Result<Vec<GoldenMaster>, EngineError> {
        let client = self.connection()?.client.clone();
        let registered = self.store.masters()?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for m in &registered {
            seen.insert(m.vm_id.to_ascii_lowercase());
            match ops::get_vm(&client, &m.vm_id).await? {
                Some(vm) => {
                    let power = ops::power_state(&ops::vm_instance_view(&client, &m.vm_id).await?);
                    out.push(master_view(&vm, m, power));
                }
                None => out.push(GoldenMaster {
                    vm_id: m.vm_id.clone(),
                    name: name_of(&m.vm_id).into(),
                    subscription_id: m.vm_id.split('/').nth(2).unwrap_or_default().into(),
                    resource_group: m.vm_id.split('/').nth(4).unwrap_or_default().into(),
                    location: String::new(),
                    vm_size: String::new(),
                    power_state: "deleted".into(),
                    image_definition_id: m.image_definition_id.clone(),
                    image_definition: name_of(&m.image_definition_id).into(),
                    capture_subnet_id: m.capture_subnet_id.clone(),
                    registered_at: Some(m.registered_at.clone()),
                }),
            }
        }
        for vm in self.tagged_masters().await? {
            let id = vm["id"].as_str().unwrap_or_default();
            if !seen.insert(id.to_ascii_lowercase()) {
                continue;
            }
            let proposal = self.propose_master(&vm);
            let power = ops::power_state(&ops::vm_instance_view(&client, id).await?);
            out.push(master_view(
                &vm,
                &MasterRecord {
                    vm_id: id.into(),
                    image_definition_id: proposal.image_definition_id,
                    capture_subnet_id: proposal.capture_subnet_id,
                    registered_at: String::new(),
                },
                power,
            ));
        }
        Ok(out)
    }

    /// VMs tagged `ringmaster-golden-master`: one Resource Graph query (ids), then each VM; per-subscription VM
    /// listing when Resource Graph is unavailable.
    async fn tagged_masters(&self) -> Result<Vec<serde_json::Value>, EngineError> {
        let client = self.connection()?.client.clone();
        let subscriptions: Vec<String> = self.store.subscriptions()?.into_iter().map(|s| s.id).collect();
        let query = format!(
            "resources | where type =~ 'microsoft.compute/virtualmachines' and isnotempty(tags['{MASTER_TAG}']) | project id"
        );
        match client.resource_graph::<serde_json::Value>(&query, &subscriptions, |_, _| {}).await {
            Ok(rows) => {
                let mut vms = Vec::new();
                for id in rows.iter().filter_map(|r| r["id"].as_str()) {
                    if let Some(vm) = ops::get_vm(&client, id).await? {
                        vms.push(vm);
                    }
                }
                Ok(vms)
            }
            Err(e) => {
                tracing::warn!(target: "build", "Resource Graph unavailable ({e}); listing VMs per subscription");
                let mut vms = Vec::new();
                for sub in &subscriptions {
                    let listed: Vec<serde_json::Value> = client
                        .list_all(
                            &format!("/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines"),
                            &[("api-version", ringmaster_azure::cloud::api_version::COMPUTE)],
                            "virtual machines",
                            |_| {},
                        )
                        .await?;
                    vms.extend(listed.into_iter().filter(|v| v["tags"][MASTER_TAG].is_string()));
                }
                Ok(vms)
            }
        }
    }

    /// What registering a tagged VM would use: the image definition named by its tag (found in the gallery
    /// inventory), and its capture subnet tag, else `snet-capture` beside the master's own subnet.
    fn propose_master(&self, vm: &serde_json::Value) -> MasterRegistration {
        let def_name = vm["tags"][MASTER_TAG].as_str().unwrap_or_default();
        let image_definition_id = self
            .store
            .versions()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.id.rfind("/versions/").map(|at| v.id[..at].to_string()))
            .find(|d| name_of(d).eq_ignore_ascii_case(def_name))
            .unwrap_or_default();
        let capture_subnet_id = vm["tags"][CAPTURE_SUBNET_TAG].as_str().map(str::to_string).unwrap_or_else(|| {
            // Without a tag: the same virtual network, subnet `snet-capture` (the admin can change it).
            resource_group_id(vm["id"].as_str().unwrap_or_default())
                .map(|rg| {
                    format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet-avd-build/subnets/snet-capture")
                })
                .unwrap_or_default()
        });
        MasterRegistration {
            vm_id: vm["id"].as_str().unwrap_or_default().into(),
            image_definition_id,
            capture_subnet_id,
        }
    }

    pub async fn register_master(&self, r: &MasterRegistration) -> Result<GoldenMaster, EngineError> {
        let client = self.connection()?.client.clone();
        check_id(&r.vm_id, resource_id::VIRTUAL_MACHINE)?;
        check_id(&r.image_definition_id, resource_id::IMAGE_DEFINITION)?;
        validate_subnet_id(&r.capture_subnet_id).map_err(EngineError::InvalidInput)?;
        let vm = ops::get_vm(&client, &r.vm_id)
            .await?
            .ok_or_else(|| EngineError::InvalidInput(format!("there is no VM {}", r.vm_id)))?;
        ops::get_image_definition(&client, &r.image_definition_id).await?.ok_or_else(|| {
            EngineError::InvalidInput(format!("there is no image definition {}", r.image_definition_id))
        })?;
        if vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().is_none() {
            return Err(EngineError::InvalidInput("the VM has no managed OS disk; it cannot be captured".into()));
        }
        let record = MasterRecord {
            vm_id: vm["id"].as_str().unwrap_or(&r.vm_id).into(),
            image_definition_id: r.image_definition_id.clone(),
            capture_subnet_id: r.capture_subnet_id.clone(),
            registered_at: now_rfc3339(),
        };
        self.audit(
            "master.register",
            name_of(&record.vm_id),
            serde_json::json!({"vmId": record.vm_id, "imageDefinitionId": record.image_definition_id,
                               "captureSubnetId": record.capture_subnet_id}),
        )?;
        self.store.save_master(&record)?;
        let power = ops::power_state(&ops::vm_instance_view(&client, &record.vm_id).await?);
        Ok(master_view(&vm, &record, power))
    }

    fn registered_master(&self, vm_id: &str) -> Result<MasterRecord, EngineError> {
        self.store
            .masters()?
            .into_iter()
            .find(|m| m.vm_id.eq_ignore_ascii_case(vm_id))
            .ok_or_else(|| EngineError::InvalidInput(format!("{} is not a registered golden master", name_of(vm_id))))
    }

    // ---------------------------------------------------------------- script collections and runs

    pub fn collections(&self) -> Result<Vec<ScriptCollection>, EngineError> {
        Ok(self
            .store
            .collections()?
            .into_iter()
            .filter_map(|c| {
                let mut parsed: ScriptCollection = serde_json::from_str(&c.body).ok()?;
                parsed.id = c.id;
                parsed.updated_at = c.updated_at;
                Some(parsed)
            })
            .collect())
    }

    pub fn save_collection(&self, c: &ScriptCollection) -> Result<ScriptCollection, EngineError> {
        build::validate_collection(c).map_err(EngineError::InvalidInput)?;
        let mut c = c.clone();
        if c.id.is_empty() {
            c.id = rollout::uuid_like();
        }
        c.updated_at = now_rfc3339();
        let body = serde_json::to_string(&c).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        let hashes: Vec<String> = c.scripts.iter().map(build::script_hash).collect();
        self.audit("collection.save", &c.name, serde_json::json!({"collectionId": c.id, "scriptSha256": hashes}))?;
        self.store.save_collection(&CollectionRecord {
            id: c.id.clone(),
            name: c.name.clone(),
            body,
            updated_at: c.updated_at.clone(),
        })?;
        Ok(c)
    }

    pub fn delete_collection(&self, id: &str) -> Result<(), EngineError> {
        let name = self.collections()?.into_iter().find(|c| c.id == id).map(|c| c.name).unwrap_or_else(|| id.into());
        self.audit("collection.delete", &name, serde_json::json!({"collectionId": id}))?;
        if !self.store.delete_collection(id)? {
            return Err(EngineError::InvalidInput(format!("no collection {id}")));
        }
        Ok(())
    }

    /// A collection file's text becomes a new collection (never overwrites one).
    pub fn import_collection(&self, text: &str) -> Result<ScriptCollection, EngineError> {
        let c = build::parse_collection_file(text).map_err(EngineError::InvalidInput)?;
        self.save_collection(&c)
    }

    /// The collection as a file's text (pretty JSON, without the local id).
    pub fn export_collection(&self, id: &str) -> Result<String, EngineError> {
        let mut c = self
            .collections()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| EngineError::InvalidInput(format!("no collection {id}")))?;
        c.id = String::new();
        serde_json::to_string_pretty(&c).map_err(|e| EngineError::InvalidInput(e.to_string()))
    }

    pub fn start_script_run(&self, collection_id: &str, vm_id: &str) -> Result<ScriptRun, EngineError> {
        check_id(vm_id, resource_id::VIRTUAL_MACHINE)?;
        self.registered_master(vm_id)?;
        let c = self
            .collections()?
            .into_iter()
            .find(|c| c.id == collection_id)
            .ok_or_else(|| EngineError::InvalidInput(format!("no collection {collection_id}")))?;
        let builds = self.builds()?;
        self.audit("run.start", &c.name, serde_json::json!({"collectionId": c.id, "vmId": vm_id}))?;
        let id = builds.start_run(&c, vm_id, &self.principal())?;
        builds.run_view(&id)
    }

    pub fn script_runs(&self) -> Result<Vec<ScriptRun>, EngineError> {
        let mut out = Vec::new();
        for r in self.store.runs()? {
            let steps = self.store.steps(&r.id)?;
            out.push(build::run_view(r, steps));
        }
        Ok(out)
    }

    pub fn script_run(&self, id: &str) -> Result<ScriptRun, EngineError> {
        let r = self.store.run(id)?.ok_or_else(|| EngineError::InvalidInput(format!("no script run {id}")))?;
        Ok(build::run_view(r, self.store.steps(id)?))
    }

    /// Cancel a script run (after the script running now; Run Command cannot stop it midway) or a capture
    /// (at the next stage; temporary resources are removed).
    pub fn cancel_build(&self, id: &str) -> Result<(), EngineError> {
        let builds = self.builds()?;
        self.audit("build.cancel", id, serde_json::json!({"id": id}))?;
        builds.cancel(id)
    }

    // ---------------------------------------------------------------- capture

    /// How many VMs each ringed pool's rollout may create at once: its last rollout's policy, else the default.
    fn pool_capacities(&self) -> Result<Vec<PoolCapacity>, EngineError> {
        let mut hosts: HashMap<String, u32> = HashMap::new();
        for (pool, _, n) in self.store.version_counts()? {
            *hosts.entry(pool).or_default() += n;
        }
        let mut policies: HashMap<String, RolloutPolicy> = HashMap::new();
        for r in self.store.rollouts()?.into_iter().rev() {
            if let Ok(p) = serde_json::from_str(&r.policy) {
                policies.insert(r.host_pool_id.to_ascii_lowercase(), p);
            }
        }
        Ok(self
            .store
            .pools()?
            .into_iter()
            .filter(|p| !p.ring.is_empty())
            .map(|p| {
                let key = p.id.to_ascii_lowercase();
                let policy = policies.get(&key).cloned().unwrap_or_default();
                PoolCapacity {
                    pool_name: p.name,
                    ring: p.ring,
                    location: p.location,
                    parallel_creates: effective_capacity(&policy, hosts.get(&key).copied().unwrap_or(0)).max(1),
                }
            })
            .collect())
    }

    fn region_needs(&self) -> Result<Vec<RegionNeed>, EngineError> {
        Ok(release::region_targets(&self.pool_capacities()?, "")
            .into_iter()
            .map(|t| RegionNeed { region: t.region, required_replicas: t.replicas, reason: t.reason })
            .collect())
    }

    /// Everything a capture of `master_vm_id` would do, for review before it starts.
    pub async fn plan_capture(&self, master_vm_id: &str) -> Result<CapturePlan, EngineError> {
        check_id(master_vm_id, resource_id::VIRTUAL_MACHINE)?;
        let master = self.registered_master(master_vm_id)?;
        let client = self.connection()?.client.clone();
        let definition = ops::get_image_definition(&client, &master.image_definition_id).await?.ok_or_else(|| {
            EngineError::InvalidInput(format!("the image definition {} is gone", master.image_definition_id))
        })?;
        let existing: Vec<String> = ops::list_image_versions(&client, &master.image_definition_id)
            .await?
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        let today = client.server_now().date();
        let version = release::next_version_name(&existing, today);
        let targets =
            release::region_targets(&self.pool_capacities()?, definition["location"].as_str().unwrap_or_default());
        let unrecorded_changes: Vec<String> = ops::list_run_commands(&client, &master.vm_id)
            .await?
            .iter()
            .filter_map(|rc| rc["name"].as_str())
            .filter(|n| !n.starts_with(RUN_COMMAND_PREFIX))
            .map(str::to_string)
            .collect();
        let runs = self.store.runs()?;
        let previous = self
            .store
            .captures()?
            .into_iter()
            .find(|c| c.state == "succeeded" && c.master_vm_id.eq_ignore_ascii_case(&master.vm_id));
        let since: Vec<_> = runs
            .iter()
            .filter(|r| r.vm_id.eq_ignore_ascii_case(&master.vm_id))
            .filter(|r| previous.as_ref().is_none_or(|p| r.started_at > p.created_at))
            .collect();
        let mut warnings = Vec::new();
        if since.iter().any(|r| r.state == "running") {
            return Err(EngineError::InvalidInput(
                "A script collection is still running on the master; capture when it ends.".into(),
            ));
        }
        if !since.iter().any(|r| r.state == "succeeded") {
            warnings.push("No script collection succeeded on the master since the previous capture: checklist item 1 will not be met.".into());
        }
        if !unrecorded_changes.is_empty() {
            warnings.push(format!(
                "The master has run commands this app did not start ({}): checklist item 2 will not be met.",
                unrecorded_changes.join(", ")
            ));
        }
        if targets.is_empty() {
            warnings.push(
                "No host pool is tagged with a ring, so the version replicates to the gallery's region only.".into(),
            );
        }
        Ok(CapturePlan {
            master_vm_id: master.vm_id.clone(),
            image_definition_id: master.image_definition_id.clone(),
            version,
            target_regions: targets,
            end_of_life: release::end_of_life(client.server_now(), &self.retention_policy()),
            exclude_from_latest: true,
            capture_subnet_id: master.capture_subnet_id.clone(),
            last_run_id: since.iter().find(|r| r.state == "succeeded").map(|r| r.id.clone()),
            unrecorded_changes,
            warnings,
        })
    }

    /// Start a capture from a reviewed plan. The plan is re-checked: the master must be registered and the
    /// version name still free.
    pub async fn start_capture(&self, plan: &CapturePlan) -> Result<CaptureView, EngineError> {
        // The plan comes back from the UI: every id in it is checked again, and must match the registration.
        check_id(&plan.master_vm_id, resource_id::VIRTUAL_MACHINE)?;
        check_id(&plan.image_definition_id, resource_id::IMAGE_DEFINITION)?;
        validate_subnet_id(&plan.capture_subnet_id).map_err(EngineError::InvalidInput)?;
        for r in &plan.target_regions {
            resource_id::check_name(&r.region, "region").map_err(EngineError::InvalidInput)?;
        }
        let master = self.registered_master(&plan.master_vm_id)?;
        if !master.capture_subnet_id.eq_ignore_ascii_case(&plan.capture_subnet_id) {
            return Err(EngineError::InvalidInput("the plan's capture subnet is not the master's; plan again".into()));
        }
        if !master.image_definition_id.eq_ignore_ascii_case(&plan.image_definition_id) {
            return Err(EngineError::InvalidInput(
                "the plan's image definition is not the master's; plan again".into(),
            ));
        }
        release::version_key(&plan.version).ok_or_else(|| {
            EngineError::InvalidInput(format!("'{}' is not a version name (<int>.<int>.<int>)", plan.version))
        })?;
        if plan.target_regions.is_empty()
            || plan.target_regions.iter().any(|r| r.replicas == 0 || r.replicas > release::MAX_REPLICAS)
        {
            return Err(EngineError::InvalidInput("every target region needs 1 to 100 replicas".into()));
        }
        let client = self.connection()?.client.clone();
        if ops::get_image_version(&client, &format!("{}/versions/{}", plan.image_definition_id, plan.version))
            .await?
            .is_some()
        {
            return Err(EngineError::InvalidInput(format!(
                "version {} already exists; plan again for a new name",
                plan.version
            )));
        }
        let builds = self.builds()?;
        self.audit("capture.start", &plan.version, serde_json::to_value(plan).unwrap_or_default())?;
        let id = builds.start_capture(plan, &self.principal())?;
        builds.capture_view(&id)
    }

    pub fn capture(&self, id: &str) -> Result<CaptureView, EngineError> {
        self.builds()?.capture_view(id)
    }

    pub fn captures(&self) -> Result<Vec<CaptureSummary>, EngineError> {
        Ok(self.store.captures()?.into_iter().map(build::capture_summary).collect())
    }

    // ---------------------------------------------------------------- releases

    pub fn retention_policy(&self) -> RetentionPolicy {
        self.store
            .setting("retention_policy")
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    pub fn set_retention_policy(&self, p: &RetentionPolicy) -> Result<(), EngineError> {
        if p.keep_newest == 0 || p.keep_newest > 100 {
            return Err(EngineError::InvalidInput("keep between 1 and 100 newest versions".into()));
        }
        if p.end_of_life_days == 0 || p.end_of_life_days > 3650 {
            return Err(EngineError::InvalidInput("end of life is 1 to 3,650 days after capture".into()));
        }
        self.audit("retention.policy", "gallery", serde_json::to_value(p).unwrap_or_default())?;
        self.store.set_setting("retention_policy", &serde_json::to_string(p).unwrap_or_default())?;
        Ok(())
    }

    fn rolled_back_versions(&self) -> Result<HashSet<String>, EngineError> {
        Ok(self.store.rollouts()?.into_iter().filter(|r| r.rolled_back).map(|r| r.target_version).collect())
    }

    pub fn releases(&self) -> Result<Vec<ReleaseSummary>, EngineError> {
        let versions = image_versions(&self.store)?;
        let mut out = Vec::new();
        for v in &versions {
            out.push(self.release_view_of(v, &versions)?.summary);
        }
        Ok(out)
    }

    pub fn release(&self, version: &str) -> Result<ReleaseView, EngineError> {
        let versions = image_versions(&self.store)?;
        let v = versions
            .iter()
            .find(|v| v.name == version)
            .ok_or_else(|| EngineError::InvalidInput(format!("no image version {version} in the inventory")))?;
        let mut view = self.release_view_of(v, &versions)?;
        view.promotions = self.promotion_checks(version)?;
        Ok(view)
    }

    fn release_view_of(&self, v: &ImageVersionRow, versions: &[ImageVersionRow]) -> Result<ReleaseView, EngineError> {
        let now = OffsetDateTime::now_utc();
        let captures = self.store.captures()?;
        let capture = captures.iter().find(|c| c.version_id.eq_ignore_ascii_case(&v.id)).cloned();
        let capture_evidence = capture.as_ref().filter(|c| c.state == "succeeded").map(|c| CaptureEvidence {
            id: c.id.clone(),
            master_vm_id: c.master_vm_id.clone(),
            created_at: c.created_at.clone(),
            succeeded: true,
            unrecorded_changes: serde_json::from_str::<CapturePlan>(&c.plan)
                .map(|p| p.unrecorded_changes)
                .unwrap_or_default(),
        });
        let previous_capture_at = capture_evidence.as_ref().and_then(|this| {
            captures
                .iter()
                .filter(|c| c.state == "succeeded" && c.master_vm_id.eq_ignore_ascii_case(&this.master_vm_id))
                .filter(|c| c.created_at < this.created_at)
                .map(|c| c.created_at.clone())
                .max()
        });
        let runs = self.script_runs()?;
        let summaries = rollout::summaries(&self.store)?;
        let records = self.store.rollouts()?;
        let pools = self.store.pools()?;
        let region_needs = self.region_needs()?;
        let mut release_pools = Vec::new();
        let mut test_pools = Vec::new();
        for p in &pools {
            let listing = self.store.hosts_of_pool(&p.id)?;
            let on_release = listing.iter().filter(|l| l.host.image_version == v.name).count() as u32;
            let healthy =
                listing.iter().filter(|l| l.host.image_version == v.name && l.host.state == "available").count() as u32;
            if on_release > 0 {
                release_pools.push(ReleasePool {
                    host_pool_id: p.id.clone(),
                    pool_name: p.name.clone(),
                    ring: ring_display_name(&p.ring),
                    location: p.location.clone(),
                    hosts_on_release: on_release,
                    hosts: listing.len() as u32,
                });
            }
            if p.ring == "test" {
                let newest = records.iter().find(|r| {
                    r.host_pool_id.eq_ignore_ascii_case(&p.id) && r.target_version == v.name && r.kind == "rollout"
                });
                test_pools.push(TestPoolEvidence {
                    pool_name: p.name.clone(),
                    hosts: listing.len() as u32,
                    hosts_on_release_healthy: healthy,
                    rollout: newest.and_then(|r| summaries.iter().find(|s| s.id == r.id).cloned()),
                    rolled_back: newest.is_some_and(|r| r.rolled_back),
                });
            }
        }
        // The rollback target: the newest older version that reached Prod (visible to `latest`).
        let rollback = versions
            .iter()
            .filter(|o| !o.exclude_from_latest && o.name != v.name)
            .filter(|o| release::version_key(&o.name) < release::version_key(&v.name))
            .max_by_key(|o| release::version_key(&o.name))
            .cloned();
        let gate_runs = self.gate_runs(&v.name)?;
        let evidence = ChecklistEvidence {
            version: Some(v.clone()),
            capture: capture_evidence.clone(),
            previous_capture_at: previous_capture_at.clone(),
            runs: runs.clone(),
            region_needs: region_needs.clone(),
            test_pools,
            rollback,
            test_gates: self.ring_gates("test").map(|g| g.kinds()).unwrap_or_default(),
            gate_runs: gate_runs.clone(),
            signoff: self.signoff_state(&v.name)?,
            now,
        };
        let checklist = release::checklist(&evidence);
        let window_runs: Vec<ScriptRun> = match &capture_evidence {
            Some(c) => release::runs_in_window(&evidence, c).into_iter().cloned().collect(),
            None => Vec::new(),
        };
        let rolled_back = self.rolled_back_versions()?.contains(&v.name);
        Ok(ReleaseView {
            summary: ReleaseSummary {
                version_id: v.id.clone(),
                version: v.name.clone(),
                stage: release::release_stage(v, rolled_back, now),
                published: v.published.clone(),
                end_of_life: v.end_of_life.clone(),
                replication_state: v.replication_state.clone(),
                hosts: v.hosts,
                checklist_met: checklist.iter().filter(|i| i.state == ChecklistState::Met).count() as u32,
                checklist_total: checklist.len() as u32,
            },
            exclude_from_latest: v.exclude_from_latest,
            pools: release_pools,
            regions: v.regions.clone(),
            region_needs,
            checklist,
            capture: capture.map(build::capture_summary),
            runs: window_runs,
            rollouts: summaries.into_iter().filter(|s| s.target_version == v.name).collect(),
            gate_runs,
            promotions: Vec::new(),
        })
    }

    /// Re-read one version from the gallery (replication progress, provisioning) into the cache and return its
    /// release page: cheaper than a full refresh while a new version replicates.
    pub async fn refresh_release(&self, version: &str) -> Result<ReleaseView, EngineError> {
        let id = self.cached_version(version)?.id;
        let client = self.connection()?.client.clone();
        match ops::get_image_version(&client, &id).await? {
            Some(v) => self.store.upsert_version(&version_row(&inventory::image_version_from_json(v)?))?,
            None => {
                self.store.remove_version(&id)?;
                return Err(EngineError::InvalidInput(format!("{version} is no longer in the gallery")));
            }
        }
        self.release(version)
    }

    /// Which versions retention would keep and delete, and why.
    pub fn retention_preview(&self) -> Result<RetentionPreview, EngineError> {
        let versions = image_versions(&self.store)?;
        let mut lkg = HashSet::new();
        for p in self.store.pools()?.into_iter().filter(|p| !p.ring.is_empty()) {
            if let Some(v) = self.last_known_good(&p.id)? {
                lkg.insert(v);
            }
        }
        Ok(release::retention(&versions, &lkg, &self.retention_policy()))
    }

    /// Delete versions retention allows deleting. Each one is re-checked against a fresh preview: a version that
    /// became in use since the preview is refused, not deleted.
    pub async fn delete_versions(&self, version_ids: &[String]) -> Result<Vec<String>, EngineError> {
        for id in version_ids {
            check_id(id, resource_id::IMAGE_VERSION)?;
        }
        let preview = self.retention_preview()?;
        for id in version_ids {
            if let Some(k) = preview.keep.iter().find(|k| k.version_id.eq_ignore_ascii_case(id)) {
                return Err(EngineError::InvalidInput(format!("{} must be kept: {}", k.version, k.reason)));
            }
            if !preview.delete.iter().any(|d| d.version_id.eq_ignore_ascii_case(id)) {
                return Err(EngineError::InvalidInput(format!("{id} is not in the gallery inventory")));
            }
        }
        let client = self.connection()?.client.clone();
        let mut deleted = Vec::new();
        for id in version_ids {
            self.audit("version.delete", name_of(id), serde_json::json!({"versionId": id}))?;
            ops::delete_image_version(&client, id).await?;
            self.store.remove_version(id)?;
            deleted.push(name_of(id).to_string());
        }
        Ok(deleted)
    }
}

fn master_view(vm: &serde_json::Value, m: &MasterRecord, power: Option<String>) -> GoldenMaster {
    GoldenMaster {
        vm_id: m.vm_id.clone(),
        name: vm["name"].as_str().unwrap_or_else(|| name_of(&m.vm_id)).into(),
        subscription_id: m.vm_id.split('/').nth(2).unwrap_or_default().into(),
        resource_group: m.vm_id.split('/').nth(4).unwrap_or_default().into(),
        location: vm["location"].as_str().unwrap_or_default().into(),
        vm_size: vm["properties"]["hardwareProfile"]["vmSize"].as_str().unwrap_or_default().into(),
        power_state: power.unwrap_or_else(|| "unknown".into()),
        image_definition_id: m.image_definition_id.clone(),
        image_definition: name_of(&m.image_definition_id).into(),
        capture_subnet_id: m.capture_subnet_id.clone(),
        registered_at: (!m.registered_at.is_empty()).then(|| m.registered_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_ids_are_checked() {
        let ok = "/subscriptions/1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/snet-capture";
        assert!(validate_subnet_id(ok).is_ok());
        assert!(validate_subnet_id(&format!("{ok}/../x")).is_err());
        assert!(validate_subnet_id(&ok.replace("snet-capture", "a?b=c")).is_err());
        assert!(validate_subnet_id("/subscriptions/s/resourceGroups/rg").is_err());
        let vm = ok.replace(
            "Microsoft.Network/virtualNetworks/v/subnets/snet-capture",
            "Microsoft.Compute/virtualMachines/vm",
        );
        assert!(validate_subnet_id(&vm).unwrap_err().contains("not a Microsoft.Network/virtualNetworks/subnets id"));
    }
}
