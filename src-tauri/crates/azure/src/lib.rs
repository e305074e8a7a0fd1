//! Talking to Azure: Entra tokens (a service principal, the Azure CLI, a person's interactive sign-in), the ARM client
//! (retry, throttling, paging, long-running operations) and the typed operations the app makes. Nothing here knows
//! about rings or the UI.

pub mod client;
pub mod cloud;
pub mod credential;
pub mod error;
/// Entry points into private parsers for the property-based fuzz tests (tests/fuzz.rs); not part of the API.
#[doc(hidden)]
pub mod fuzzing;
pub mod inventory;
pub mod ops;
pub mod resource_id;
pub mod signin;

pub use client::{http_client, simulated_tenant_client, simulated_user_client, ArmClient, Lro, LroDone, RetryPolicy};
pub use cloud::Cloud;
pub use credential::{AccessToken, AzureCliSource, ClientSecretCredential, TokenIdentity, TokenSource};
pub use error::{aadsts_plain_words, ArmError, AzureError, EntraError, SignInError};
pub use signin::{
    list_tenants, Account, AuthCodeFlow, AuthorizationRequest, DeviceCodeFlow, DeviceCodePrompt, MemoryTokenCache,
    PublicClientApp, RefreshToken, RefreshTokenCredential, SignedIn, TenantInfo, TokenCache,
};
