//! Secrets the functions read from Secrets Manager on first use (see
//! [`LazySecret`]): never during init, so a cold start makes no network call.

use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::secret::ClientSecret;

use crate::config::ShoprenterAppSecret;
use crate::storage::secrets_manager::read_client_secret;

/// The secret `secret_id` names (set by `variable`), read from Secrets
/// Manager by the first request that needs it, as `T`; absent when unset.
pub fn on_first_use<T: Send + Sync + 'static>(
    client: &aws_sdk_secretsmanager::Client,
    variable: &'static str,
    secret_id: Option<String>,
    into: impl Fn(ClientSecret) -> T + Clone + Send + Sync + 'static,
) -> LazySecret<T> {
    let Some(secret_id) = secret_id else {
        return LazySecret::absent();
    };
    let client = client.clone();
    LazySecret::on_first_use(variable, move || {
        let (client, secret_id, into) = (client.clone(), secret_id.clone(), into.clone());
        async move { read_client_secret(&client, &secret_id).await.map(into) }
    })
}

/// The Shoprenter app's credentials, their secret read on first use; absent
/// when no app is configured.
pub fn shoprenter_app_credentials(
    client: &aws_sdk_secretsmanager::Client,
    app: Option<&ShoprenterAppSecret>,
) -> LazySecret<ShoprenterCredentials> {
    let Some(app) = app else {
        return LazySecret::absent();
    };
    let client_id = app.client_id.clone();
    on_first_use(
        client,
        ShoprenterAppSecret::VARIABLE,
        Some(app.secret_id.clone()),
        move |client_secret| ShoprenterCredentials {
            client_id: client_id.clone(),
            client_secret,
        },
    )
}
