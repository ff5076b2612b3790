//! The token broker: access tokens for managed OAuth2 clients, refreshed ahead of expiry, one
//! refresh at a time across every replica.
//!
//! A lease on an expired (or nearly expired) token takes the coordination lease
//! `credentials:oauth:<tenant>:<connection>`; everyone else polls the token row until the holder
//! has written the new token, so N concurrent leases cause one token call. The holder re-reads
//! the row after taking the lease (someone may just have refreshed), calls the token endpoint,
//! and commits the new tokens, a rotated refresh token included, BEFORE anyone is handed the new
//! access token; the write is fenced with the lease's fencing token, so a holder that stalled
//! past its lease cannot overwrite a newer refresh.
//!
//! Failures: a refused grant (`invalid_grant`, revoked consent, a refused client) marks the
//! connection rejected: leases fail with CREDENTIALS_REJECTED (sync reports needs-reconnect)
//! until a new put or connect. Transient failures are retried with exponential backoff within
//! one refresh; after `failure_threshold` failed refreshes in a row the connection cools down
//! and leases fail fast with UNAVAILABLE and a retry-after instead of calling the partner.

use std::time::{Duration, Instant};

use plugboard_proto::credentials::v1::OAuth2Client;
use plugboard_runtime::coordination::{Coordinator, Lease};
use prost::Message;

use super::exchange::{self, FetchError, Grant};
use super::store::{OK, REJECTED, TokenRow};
use super::{OAuthPolicy, TokenSet, now_epoch, token_binding_id, token_digest};
use crate::crypto::RowBinding;
use crate::error::Error;
use crate::health::{Condition, HealthReport};
use crate::keys::DataKeys;
use crate::service::{Actor, audit_entry};
use crate::store::{CredentialStore, StoredCredential};

/// A live access token. Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: String,
    /// Epoch seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct TokenBroker {
    store: CredentialStore,
    keys: DataKeys,
    coordinator: Coordinator,
    policy: OAuthPolicy,
    http: reqwest::Client,
    /// This replica's name as a lease holder.
    instance: String,
}

impl std::fmt::Debug for TokenBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBroker")
            .field("policy", &self.policy)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl TokenBroker {
    pub fn new(
        store: CredentialStore,
        keys: DataKeys,
        coordinator: Coordinator,
        policy: OAuthPolicy,
    ) -> Result<TokenBroker, Error> {
        let http = reqwest::Client::builder()
            // Token endpoints answer directly; a redirect is a misconfiguration, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.http_timeout)
            .build()
            .map_err(|_| Error::HttpClient)?;
        Ok(TokenBroker {
            store,
            keys,
            coordinator,
            policy,
            http,
            instance: format!("credentials-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    pub fn policy(&self) -> &OAuthPolicy {
        &self.policy
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A live access token for `credential`, whose decrypted client is `client`. `refused` is
    /// the digest ([`token_digest`]) of a token the partner refused: it is refreshed rather than
    /// served again, and a newer token that someone else already fetched is served as is.
    pub async fn access(
        &self,
        actor: &Actor,
        credential: &StoredCredential,
        client: &OAuth2Client,
        run_id: &str,
        refused: Option<&str>,
    ) -> Result<AccessToken, Error> {
        let (tenant, connection_id) = (&credential.tenant, &credential.connection_id);
        let key = format!("credentials:oauth:{tenant}:{connection_id}");
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let row = self.store.token(tenant, connection_id).await?;
            if let Some(token) = self.usable(row.as_ref(), credential, refused).await? {
                return Ok(token);
            }
            fail_fast(row.as_ref(), connection_id)?;
            let lease = self
                .coordinator
                .try_acquire(&key, &self.instance, self.policy.lock_ttl)
                .await
                .map_err(|error| Error::Coordination(error.to_string()))?;
            if let Some(lease) = lease {
                let outcome = self
                    .refresh_holding(&lease, actor, credential, client, run_id, refused)
                    .await;
                if let Err(error) = self.coordinator.release(&lease).await {
                    // It expires on its own after lock_ttl.
                    tracing::warn!(error = %error, "cannot release the refresh lease");
                }
                return outcome;
            }
            if started.elapsed() > self.policy.wait {
                return Err(Error::RefreshInProgress {
                    connection_id: connection_id.clone(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The cached access token when it has more than `refresh_ahead` left and is not the one
    /// the partner `refused`.
    async fn usable(
        &self,
        row: Option<&TokenRow>,
        credential: &StoredCredential,
        refused: Option<&str>,
    ) -> Result<Option<AccessToken>, Error> {
        let Some(row) = row else { return Ok(None) };
        let ahead = i64::try_from(self.policy.refresh_ahead.as_secs()).unwrap_or(i64::MAX);
        let fresh = row.state == OK
            && !row.sealed.is_empty()
            && row.credential_version == credential.version
            && row.access_expires_at.saturating_sub(now_epoch()) > ahead;
        if !fresh {
            return Ok(None);
        }
        let set = self.open(row).await?;
        if refused.is_some_and(|refused| refused == token_digest(&set.access_token)) {
            tracing::info!("the partner refused the cached access token; refreshing it");
            return Ok(None);
        }
        Ok(Some(AccessToken {
            access_token: set.access_token,
            token_type: set.token_type,
            expires_at: row.access_expires_at,
        }))
    }

    /// Opens `row`; when a data key rotation re-sealed it and deleted the old key in between,
    /// the row is read again.
    async fn open(&self, row: &TokenRow) -> Result<TokenSet, Error> {
        let error = match self.open_row(row).await {
            Ok(set) => return Ok(set),
            Err(error) => error,
        };
        match self.store.token(&row.tenant, &row.connection_id).await? {
            Some(again) if again.generation == row.generation && again.key_id != row.key_id => {
                self.open_row(&again).await
            }
            _ => Err(error),
        }
    }

    async fn open_row(&self, row: &TokenRow) -> Result<TokenSet, Error> {
        let unreadable = || Error::SecretUnreadable {
            connection_id: row.connection_id.clone(),
        };
        let key = self
            .keys
            .for_read(&row.tenant, &row.key_id, &row.connection_id)
            .await?;
        let bound = token_binding_id(&row.connection_id);
        let binding = RowBinding {
            tenant: &row.tenant,
            connection_id: &bound,
            version: row.generation,
        };
        let plaintext = key.open(binding, &row.sealed).map_err(|_| unreadable())?;
        TokenSet::decode(plaintext.as_slice()).map_err(|_| unreadable())
    }

    /// Seals `set` as generation `generation` of the connection's token row.
    pub(crate) async fn seal(
        &self,
        tenant: &str,
        connection_id: &str,
        generation: u64,
        set: &TokenSet,
    ) -> Result<(String, String), Error> {
        let (key_id, key) = self.keys.for_write(tenant).await?;
        let bound = token_binding_id(connection_id);
        let binding = RowBinding {
            tenant,
            connection_id: &bound,
            version: generation,
        };
        let sealed = key
            .seal(binding, &zeroize::Zeroizing::new(set.encode_to_vec()))
            .map_err(|error| Error::Encrypt(error.to_string()))?;
        Ok((key_id, sealed))
    }

    /// [`CredentialStore::write_token`], sealing `set` (the plaintext of `row.sealed`) again
    /// under the tenant's new data key when another replica rotated it meanwhile, so a rotated
    /// refresh token is never dropped for a rotation.
    async fn write_resealing(
        &self,
        mut row: TokenRow,
        set: Option<&TokenSet>,
        audit: &crate::store::AuditEntry,
        report: Option<&HealthReport>,
    ) -> Result<bool, Error> {
        let mut attempts = 0;
        loop {
            match self.store.write_token(&row, audit, report).await {
                Err(Error::StaleDataKey) if attempts < 2 => {
                    let Some(set) = set else {
                        return Err(Error::StaleDataKey);
                    };
                    self.keys.forget_current(&row.tenant);
                    let (key_id, sealed) = self
                        .seal(&row.tenant, &row.connection_id, row.generation, set)
                        .await?;
                    row.key_id = key_id;
                    row.sealed = sealed;
                    attempts += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn refresh_holding(
        &self,
        lease: &Lease,
        actor: &Actor,
        credential: &StoredCredential,
        client: &OAuth2Client,
        run_id: &str,
        refused: Option<&str>,
    ) -> Result<AccessToken, Error> {
        let connection_id = &credential.connection_id;
        // Someone may have refreshed between our read and our lease.
        let row = self
            .store
            .token(&credential.tenant, connection_id)
            .await?
            .filter(|row| row.credential_version == credential.version);
        if let Some(token) = self.usable(row.as_ref(), credential, refused).await? {
            return Ok(token);
        }
        fail_fast(row.as_ref(), connection_id)?;
        let current = match row.as_ref().filter(|row| !row.sealed.is_empty()) {
            Some(row) => Some(self.open(row).await?),
            None => None,
        };
        let refresh_token = current
            .as_ref()
            .map(|set| set.refresh_token.clone())
            .filter(|refresh| !refresh.is_empty());

        let mut delay = self.policy.backoff;
        let mut attempt = 1;
        let outcome = loop {
            let grant = match &refresh_token {
                Some(refresh) => Grant::RefreshToken(refresh),
                None => Grant::ClientCredentials,
            };
            match exchange::fetch(&self.http, &self.policy, client, grant).await {
                Err(FetchError::Transient(reason)) if attempt < self.policy.attempts => {
                    tracing::info!(attempt, reason = %reason, "token endpoint failed, backing off");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => break other,
            }
        };

        let previous_failures = row.as_ref().map_or(0, |row| row.failures);
        let generation = row.as_ref().map_or(0, |row| row.generation) + 1;
        let fence = i64::try_from(lease.fencing_token).unwrap_or(i64::MAX);
        let base = TokenRow {
            tenant: credential.tenant.clone(),
            connection_id: connection_id.clone(),
            credential_version: credential.version,
            generation: row.as_ref().map_or(0, |row| row.generation),
            key_id: row
                .as_ref()
                .map(|row| row.key_id.clone())
                .unwrap_or_default(),
            sealed: row
                .as_ref()
                .map(|row| row.sealed.clone())
                .unwrap_or_default(),
            access_expires_at: row.as_ref().map_or(0, |row| row.access_expires_at),
            fence,
            state: OK.to_owned(),
            failures: 0,
            cool_until: 0,
            last_error: String::new(),
        };
        let audit = |outcome: &str| {
            audit_entry(
                actor,
                connection_id,
                "refresh",
                outcome,
                run_id,
                credential.version,
            )
        };
        match outcome {
            Ok(fetched) => {
                let lifetime = fetched.expires_in.unwrap_or(self.policy.default_lifetime);
                let expires_at = now_epoch()
                    .saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
                let set = TokenSet {
                    access_token: fetched.access_token,
                    token_type: fetched.token_type,
                    // A partner that does not rotate keeps the old refresh token valid.
                    refresh_token: fetched.refresh_token.or(refresh_token).unwrap_or_default(),
                };
                let (key_id, sealed) = self
                    .seal(&credential.tenant, connection_id, generation, &set)
                    .await?;
                let written = TokenRow {
                    generation,
                    key_id,
                    sealed,
                    access_expires_at: expires_at,
                    ..base
                };
                let outcome = if previous_failures > 0 {
                    "recovered"
                } else {
                    "ok"
                };
                // Committed before the access token leaves: a rotated refresh token is never
                // lost to a crash between the partner's answer and our write.
                if !self
                    .write_resealing(written, Some(&set), &audit(outcome), None)
                    .await?
                {
                    tracing::warn!("a newer refresh lease wrote the token first");
                    return Err(Error::RefreshInProgress {
                        connection_id: connection_id.clone(),
                    });
                }
                if previous_failures > 0 {
                    tracing::info!(previous_failures, "token refresh recovered");
                } else {
                    tracing::info!(generation, "refreshed an access token");
                }
                Ok(AccessToken {
                    access_token: set.access_token,
                    token_type: set.token_type,
                    expires_at,
                })
            }
            Err(FetchError::Rejected(reason) | FetchError::Config(reason)) => {
                let written = TokenRow {
                    state: REJECTED.to_owned(),
                    last_error: reason.clone(),
                    ..base
                };
                // Only the refresh that finds the grant refused tells health; later leases fail
                // fast on the stored state without a word.
                let report = HealthReport::new(
                    &credential.tenant,
                    connection_id,
                    &credential.connector,
                    Condition::Rejected,
                    &plain_refusal(&reason),
                );
                self.write_resealing(written, current.as_ref(), &audit("rejected"), Some(&report))
                    .await?;
                tracing::warn!(reason = %reason, "the partner rejected the grant; the connection needs a reconnect");
                Err(Error::CredentialsRejected {
                    connection_id: connection_id.clone(),
                    reason,
                })
            }
            Err(FetchError::Transient(reason)) => {
                let failures = previous_failures.saturating_add(1);
                let cooling = failures >= self.policy.failure_threshold;
                let cooldown = i64::try_from(self.policy.cooldown.as_secs()).unwrap_or(i64::MAX);
                let written = TokenRow {
                    failures,
                    cool_until: if cooling {
                        now_epoch().saturating_add(cooldown)
                    } else {
                        0
                    },
                    last_error: reason.clone(),
                    ..base
                };
                let expires_at = written.access_expires_at;
                self.write_resealing(written, current.as_ref(), &audit("failed"), None)
                    .await?;
                tracing::warn!(failures, cooling, reason = %reason, "token refresh failed");
                // Refreshing ahead of expiry: the old token still works for a while.
                if let Some(set) = current
                    && expires_at > now_epoch() + 5
                {
                    return Ok(AccessToken {
                        access_token: set.access_token,
                        token_type: set.token_type,
                        expires_at,
                    });
                }
                if cooling {
                    Err(Error::CoolingDown {
                        connection_id: connection_id.clone(),
                        failures,
                        retry_after_secs: self.policy.cooldown.as_secs(),
                    })
                } else {
                    Err(Error::TokenEndpointUnavailable {
                        connection_id: connection_id.clone(),
                        reason,
                    })
                }
            }
        }
    }
}

/// A refusal in words a customer can act on, with the partner's code for support.
fn plain_refusal(code: &str) -> String {
    let words = if code.contains("invalid_grant") {
        "the authorization was revoked or has expired"
    } else if code.contains("invalid_client") {
        "the OAuth client was refused"
    } else if code.contains("unauthorized_client") {
        "the OAuth client may no longer use this grant"
    } else {
        "the stored OAuth client cannot be used"
    };
    format!("{words} ({code})")
}

/// A rejected or cooling connection fails at once, without calling the partner.
fn fail_fast(row: Option<&TokenRow>, connection_id: &str) -> Result<(), Error> {
    let Some(row) = row else { return Ok(()) };
    if row.state == REJECTED {
        return Err(Error::CredentialsRejected {
            connection_id: connection_id.to_owned(),
            reason: row.last_error.clone(),
        });
    }
    let left = row.cool_until.saturating_sub(now_epoch());
    if left > 0 {
        return Err(Error::CoolingDown {
            connection_id: connection_id.to_owned(),
            failures: row.failures,
            retry_after_secs: u64::try_from(left).unwrap_or_default(),
        });
    }
    Ok(())
}
