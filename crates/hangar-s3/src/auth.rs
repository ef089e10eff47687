//! SigV4 secrets for `s3s`: looked up among the configured accounts.

use std::collections::HashMap;

use hangar_auth::SecretKey;
use s3s::S3Result;
use s3s::auth::S3Auth;

use crate::S3Account;

/// The secret of each configured access key. `s3s` verifies the signature
/// with it; the operations then map the verified access key to its account.
pub struct AccountAuth {
    secrets: HashMap<String, SecretKey>,
}

impl AccountAuth {
    pub fn new(accounts: Vec<S3Account>) -> Self {
        Self {
            secrets: accounts
                .into_iter()
                .map(|account| (account.access_key_id, account.secret))
                .collect(),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for AccountAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.secrets.get(access_key) {
            Some(secret) => Ok(s3s::auth::SecretKey::from(secret.expose())),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
