//! Drive a simulated tenant over real HTTPS: start it (validating every request and response against the Azure
//! specs when they are present), trust its CA, get a token, call ARM and follow long-running operations.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::Method;
use ringmaster_sim::{Seed, SimConfig, SimHandle};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const COMPUTE: &str = "2024-07-01";
pub const NETWORK: &str = "2024-05-01";
pub const AVD: &str = "2024-04-03";
pub const DISK: &str = "2024-03-02";

/// Demo seed: the shared-services subscription (gallery) and the pilot one (Test and Pilot pools).
pub const SUB_SHARED: &str = "1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01";
pub const SUB_PILOT: &str = "1b2c3d4e-0002-4a5b-8c7d-1e2f3a4b5c02";

pub fn version_id(version: &str) -> String {
    format!("/subscriptions/{SUB_SHARED}/resourceGroups/rg-avd-images/providers/Microsoft.Compute/galleries/gal_avd_contoso/images/win11-24h2-avd-m365/versions/{version}")
}

pub fn rg(name: &str) -> String {
    format!("/subscriptions/{SUB_PILOT}/resourceGroups/{name}")
}

pub fn pool(rg_name: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.DesktopVirtualization/hostPools/{name}", rg(rg_name))
}

pub fn vm(rg_name: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.Compute/virtualMachines/{name}", rg(rg_name))
}

pub fn nic(rg_name: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.Network/networkInterfaces/{name}", rg(rg_name))
}

pub fn subnet(rg_name: &str, location: &str) -> String {
    format!("{}/providers/Microsoft.Network/virtualNetworks/vnet-avd-{location}/subnets/snet-hosts", rg(rg_name))
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
    token: String,
}

impl Sim {
    pub async fn start(time_scale: f64) -> Sim {
        let config = SimConfig {
            seed: Seed::Demo,
            time_scale,
            validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
            ..SimConfig::default()
        };
        let handle = ringmaster_sim::start(config).await.expect("sim starts");
        let ca = std::fs::read(&handle.ready.ca_cert).expect("CA written");
        let cert = reqwest::Certificate::from_pem(&ca).expect("CA parses");
        let http = reqwest::Client::builder()
            .tls_certs_only([cert])
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client builds");
        let r = &handle.ready;
        let token: Value = http
            .post(format!("{}/{}/oauth2/v2.0/token", r.login, r.tenant_id))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", r.client_id.as_str()),
                ("client_secret", r.client_secret.as_str()),
                ("scope", "https://management.azure.com/.default"),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token JSON");
        let token = token["access_token"].as_str().expect("access token").to_string();
        Sim { handle, http, token }
    }

    /// Call ARM: `path` is an ARM id or path (query parameters other than api-version may follow `?`).
    pub async fn call(&self, method: Method, path: &str, api: &str, body: Option<&Value>) -> Resp {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}api-version={api}", self.handle.ready.arm);
        self.send(method, &url, body).await
    }

    /// Call an absolute URL (polling URLs).
    pub async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Resp {
        let mut rb = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body read");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str, api: &str) -> Resp {
        self.call(Method::GET, path, api, None).await
    }
    pub async fn put(&self, path: &str, api: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, api, Some(body)).await
    }
    pub async fn patch(&self, path: &str, api: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, api, Some(body)).await
    }
    pub async fn post(&self, path: &str, api: &str, body: Option<&Value>) -> Resp {
        self.call(Method::POST, path, api, body).await
    }
    pub async fn delete(&self, path: &str, api: &str) -> Resp {
        self.call(Method::DELETE, path, api, None).await
    }

    /// Follow a long-running operation to its end: the last `Azure-AsyncOperation` status document, or the
    /// final `Location` answer when that is all there is.
    pub async fn wait_lro(&self, first: &Resp) -> Resp {
        let deadline = Instant::now() + Duration::from_secs(15);
        let wait = |r: &Resp| {
            let s: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(1);
            Duration::from_secs(s).clamp(Duration::from_millis(15), Duration::from_millis(1000))
        };
        if let Some(url) = first.header("azure-asyncoperation") {
            let mut last = first.clone();
            loop {
                assert!(Instant::now() < deadline, "operation {url} did not end");
                tokio::time::sleep(wait(&last)).await;
                last = self.send(Method::GET, &url, None).await;
                assert_eq!(last.status, 200, "{:?}", last.body);
                if last.body["status"] != "InProgress" {
                    return last;
                }
            }
        }
        let url = first.header("location").expect("an LRO answer carries Location");
        let mut last = first.clone();
        loop {
            assert!(Instant::now() < deadline, "operation {url} did not end");
            tokio::time::sleep(wait(&last)).await;
            last = self.send(Method::GET, &url, None).await;
            if last.status != 202 {
                return last;
            }
        }
    }

    /// Poll `path` until `done` holds for the answer (or fail after `timeout`).
    pub async fn wait_for(&self, path: &str, api: &str, timeout: Duration, done: impl Fn(&Resp) -> bool) -> Resp {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(path, api).await;
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected state; last: {} {}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn control(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.handle.ready.arm);
        let mut rb = self.http.request(method, url);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("control request");
        assert!(r.status().is_success(), "sim control {path}: {}", r.status());
        r.json().await.expect("control JSON")
    }

    pub async fn stats(&self) -> Value {
        self.control(Method::GET, "/_sim/stats", None).await
    }

    pub async fn faults(&self, faults: Value) {
        self.control(Method::POST, "/_sim/faults", Some(&faults)).await;
    }

    /// The sim clock now.
    pub async fn now(&self) -> OffsetDateTime {
        let s = self.stats().await;
        OffsetDateTime::parse(s["simNow"].as_str().expect("simNow"), &Rfc3339).expect("simNow parses")
    }

    /// Sleep until the sim clock has passed `t`.
    pub async fn sleep_until(&self, t: OffsetDateTime) {
        while self.now().await <= t {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn assert_no_spec_violations(&self) {
        let s = self.stats().await;
        let v = s["specViolations"].as_array().cloned().unwrap_or_default();
        assert!(v.is_empty(), "spec violations: {v:?}");
    }

    /// Issue (renew) the pool's registration token, valid for `hours` on the sim clock; returns it.
    pub async fn issue_token(&self, pool_id: &str, hours: i64) -> String {
        let expires = self.now().await + time::Duration::hours(hours) + time::Duration::minutes(5);
        let body = json!({"properties": {"registrationInfo": {
            "expirationTime": expires.format(&Rfc3339).unwrap(),
            "registrationTokenOperation": "Update"
        }}});
        let r = self.patch(pool_id, AVD, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["properties"]["registrationInfo"]["token"].as_str().expect("token on the PATCH answer").to_string()
    }

    /// PUT a NIC and wait until it is provisioned.
    pub async fn create_nic(&self, rg_name: &str, name: &str, location: &str) -> String {
        let id = nic(rg_name, name);
        let body = json!({
            "location": location,
            "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                "subnet": {"id": subnet(rg_name, location)},
                "privateIPAllocationMethod": "Dynamic"
            }}]}
        });
        let r = self.put(&id, NETWORK, &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let done = self.wait_lro(&r).await;
        assert_eq!(done.body["status"], "Succeeded");
        id
    }

    /// Start a VM create from a gallery image version; returns the first answer.
    pub async fn put_vm(&self, vm_id: &str, nic_id: &str, location: &str, version: &str, delete_option: &str) -> Resp {
        let name = vm_id.rsplit('/').next().unwrap();
        self.put(vm_id, COMPUTE, &vm_body(name, nic_id, location, version, delete_option)).await
    }

    /// Create a VM and wait for the create to end; returns the operation's last status document.
    pub async fn create_vm(
        &self,
        vm_id: &str,
        nic_id: &str,
        location: &str,
        version: &str,
        delete_option: &str,
    ) -> Resp {
        let r = self.put_vm(vm_id, nic_id, location, version, delete_option).await;
        assert_eq!(r.status, 201, "{}", r.body);
        self.wait_lro(&r).await
    }

    /// Install the AVD agent (DSC) with a registration token; returns the first answer.
    pub async fn put_dsc(&self, vm_id: &str, pool_name: &str, token: &str) -> Resp {
        let body = json!({
            "location": "westeurope",
            "properties": {
                "publisher": "Microsoft.Powershell",
                "type": "DSC",
                "typeHandlerVersion": "2.77",
                "autoUpgradeMinorVersion": true,
                "settings": {
                    "modulesUrl": "https://wvdportalstorageblob.blob.core.windows.net/galleryartifacts/Configuration_1.0.02714.342.zip",
                    "configurationFunction": "Configuration.ps1\\AddSessionHost",
                    "configurationArguments": {
                        "hostPoolName": pool_name,
                        "registrationInfoTokenCredential": {"UserName": "PLACEHOLDER_DO_NOT_USE", "Password": "PrivateSettingsRef:RegistrationInfoToken"},
                        "aadJoin": false
                    }
                },
                "protectedSettings": {"Items": {"RegistrationInfoToken": token}}
            }
        });
        self.put(&format!("{vm_id}/extensions/Microsoft.PowerShell.DSC"), COMPUTE, &body).await
    }
}

/// The `Date` header of an answer (IMF-fixdate, on the sim clock).
pub fn date_header(r: &Resp) -> OffsetDateTime {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(&r.header("date").expect("Date header"), &f).expect("IMF-fixdate").assume_utc()
}

pub fn vm_body(name: &str, nic_id: &str, location: &str, version: &str, delete_option: &str) -> Value {
    json!({
        "location": location,
        "tags": {"avd-image-version": version},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D8s_v5"},
            "storageProfile": {
                "imageReference": {"id": version_id(version)},
                "osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}, "deleteOption": delete_option}
            },
            "osProfile": {"computerName": name, "adminUsername": "rmadmin", "adminPassword": "Sup3r-Secret-Passw0rd!"},
            "licenseType": "Windows_Client",
            "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true, "deleteOption": delete_option}}]}
        }
    })
}
