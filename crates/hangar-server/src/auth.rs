//! Turns a raw HTTP request into a verified caller: SigV4 checked against the
//! configured accounts (or, in dev mode, any key accepted), and the region
//! taken from the credential scope.

use std::collections::HashMap;

use hangar_auth::{AuthError, ParsedAuth, RequestParts, SecretKey, UriEncoding};
use hangar_core::Caller;
use time::OffsetDateTime;

use crate::config::Config;

/// The account dev mode uses when the access key is not a 12-digit ID.
pub const DEV_DEFAULT_ACCOUNT: &str = "123456789012";

struct Account {
    account_id: String,
    secret: SecretKey,
}

pub struct Authenticator {
    accounts: HashMap<String, Account>,
    regions: Vec<String>,
    dev_mode: bool,
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Self {
        let accounts = config
            .accounts
            .iter()
            .map(|account| {
                (
                    account.access_key_id.clone(),
                    Account {
                        account_id: account.id.clone(),
                        secret: account.secret_access_key.clone(),
                    },
                )
            })
            .collect();
        Self {
            accounts,
            regions: config.regions.clone(),
            dev_mode: config.dev_mode(),
        }
    }

    /// Reads the SigV4 credential scope without verifying anything, to learn
    /// which service the request is for.
    pub fn peek(parts: &RequestParts<'_>) -> Result<ParsedAuth, AuthError> {
        hangar_auth::parse(parts)
    }

    /// Verifies the request for `service` and returns the caller.
    pub fn authenticate(
        &self,
        parts: &RequestParts<'_>,
        service: &str,
        encoding: UriEncoding,
        now: OffsetDateTime,
    ) -> Result<Caller, AuthError> {
        let region_allowed = |region: &str| self.regions.iter().any(|known| known == region);
        if self.dev_mode {
            // Dev mode: any key is accepted without checking the signature,
            // but the scope must still be well-formed and name a region here.
            let parsed = hangar_auth::parse(parts)?;
            if parsed.service != service {
                return Err(AuthError::WrongService {
                    expected: service.to_string(),
                    got: parsed.service,
                });
            }
            if !region_allowed(&parsed.region) {
                return Err(AuthError::UnknownRegion(parsed.region));
            }
            let account_id = if hangar_core::ids::is_account_id(&parsed.access_key_id) {
                parsed.access_key_id
            } else {
                DEV_DEFAULT_ACCOUNT.to_string()
            };
            return Ok(Caller {
                account_id,
                region: parsed.region,
            });
        }
        let lookup = |access_key_id: &str| {
            self.accounts
                .get(access_key_id)
                .map(|account| account.secret.clone())
        };
        let parsed = hangar_auth::verify(parts, service, encoding, now, &region_allowed, &lookup)?;
        let account = self
            .accounts
            .get(&parsed.access_key_id)
            .ok_or_else(|| AuthError::InvalidAccessKey(parsed.access_key_id.clone()))?;
        Ok(Caller {
            account_id: account.account_id.clone(),
            region: parsed.region,
        })
    }
}
