//! Every official example response for the operations the app reads parses into the app's records with the
//! values the example holds.

mod common;

use std::path::PathBuf;

use ringmaster_azure::inventory::{
    host_pool_from_json, image_version_from_json, session_host_from_json, vm_image_id_from_json,
};
use serde_json::Value;

fn example(rel: &str) -> Option<Value> {
    let dir: PathBuf = common::spec_dir()?;
    let path = dir.join("specification").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(serde_json::from_str(&text).expect("example is JSON"))
}

const DV: &str = "desktopvirtualization/resource-manager/Microsoft.DesktopVirtualization/stable/2024-04-03/examples";
const GALLERY: &str = "compute/resource-manager/Microsoft.Compute/GalleryRP/stable/2024-03-03/examples/galleryExamples";
const VM: &str =
    "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/examples/virtualMachineExamples";
const GRAPH: &str = "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples";

#[test]
fn session_host_examples_parse() {
    let Some(list) = example(&format!("{DV}/SessionHost_List.json")) else { return };
    let items = list["responses"]["200"]["body"]["value"].as_array().expect("value");
    assert!(!items.is_empty());
    for item in items {
        let h = session_host_from_json(item.clone()).expect("parses");
        assert_eq!(h.status, item["properties"]["status"].as_str().unwrap());
        assert_eq!(h.sessions as i64, item["properties"]["sessions"].as_i64().unwrap());
        assert_eq!(h.vm_id.as_deref(), item["properties"]["resourceId"].as_str());
        assert!(h.host_pool_id.ends_with("hostPools/hostPool1"));
    }
    let Some(get) = example(&format!("{DV}/SessionHost_Get.json")) else { return };
    let h = session_host_from_json(get["responses"]["200"]["body"].clone()).expect("parses");
    assert_eq!(h.name, "sessionHost1.microsoft.com");
    assert!(h.allow_new_session);
}

#[test]
fn image_version_examples_parse_with_replication() {
    let Some(get) = example(&format!("{GALLERY}/GalleryImageVersion_Get_WithReplicationStatus.json")) else { return };
    let body = get["responses"]["200"]["body"].clone();
    let v = image_version_from_json(body.clone()).expect("parses");
    assert_eq!(v.name, body["name"].as_str().unwrap());
    let summary = body["properties"]["replicationStatus"]["summary"].as_array().unwrap();
    for s in summary {
        let region = ringmaster_azure::inventory::normalize_region(s["region"].as_str().unwrap());
        let r = v.regions.iter().find(|r| r.region == region).expect("region kept");
        assert_eq!(r.state, s["state"].as_str().unwrap());
    }
    assert_eq!(v.replication_state, body["properties"]["replicationStatus"]["aggregatedState"].as_str().unwrap());

    let Some(list) = example(&format!("{GALLERY}/GalleryImageVersion_ListByGalleryImage.json")) else { return };
    for item in list["responses"]["200"]["body"]["value"].as_array().unwrap() {
        let v = image_version_from_json(item.clone()).expect("parses");
        assert!(!v.regions.is_empty(), "target regions read");
    }
}

#[test]
fn virtual_machine_example_gives_its_image_reference() {
    let Some(get) = example(&format!("{VM}/VirtualMachine_Create_FromAGeneralizedSharedImage.json")) else { return };
    for status in ["200", "201"] {
        let body = &get["responses"][status]["body"];
        let id = vm_image_id_from_json(body).expect("image reference id");
        assert!(id.contains("/galleries/") || id.contains("/images/"), "{id}");
    }
    let Some(get) = example(&format!("{VM}/VirtualMachine_Get.json")) else { return };
    assert!(get["responses"]["200"]["body"]["properties"]["storageProfile"].is_object());
}

#[test]
fn resource_graph_examples_have_the_shape_the_client_pages_on() {
    for name in ["ResourcesFirstPageQuery.json", "ResourcesNextPageQuery.json"] {
        let Some(ex) = example(&format!("{GRAPH}/{name}")) else { return };
        let body = &ex["responses"]["200"]["body"];
        assert!(body["data"].is_array(), "{name}: objectArray rows");
        assert!(body["totalRecords"].is_number());
        let req = &ex["parameters"]["query"];
        assert!(
            req["options"]["$top"].is_number()
                || req["options"]["$skipToken"].is_string()
                || req["options"]["$skip"].is_number(),
            "{name}"
        );
    }
}

#[test]
fn host_pool_example_parses() {
    let Some(get) = example(&format!("{DV}/HostPool_Get.json")) else { return };
    let body = get["responses"]["200"]["body"].clone();
    let p = host_pool_from_json(body.clone()).expect("parses");
    assert_eq!(p.name, body["name"].as_str().unwrap());
    assert_eq!(p.pool_type, body["properties"]["hostPoolType"].as_str().unwrap());
    assert_eq!(p.location, body["location"].as_str().unwrap());
    for (k, v) in body["tags"].as_object().into_iter().flatten() {
        assert_eq!(p.tags.get(k).map(String::as_str), v.as_str(), "tag {k} kept");
    }
}
