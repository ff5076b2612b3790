//! Clearing decoded secrets from memory once they are no longer needed.
//!
//! Decrypted plaintext buffers are `Zeroizing` (see [`crate::crypto`]); the decoded `Secret`
//! messages a lease builds from them, and those the lease cache keeps per connection, are
//! cleared by [`wipe`] when they are dropped. What a lease hands to tonic for its response is
//! encoded into tonic's own buffers, which this crate does not control.

use plugboard_proto::credentials::v1::{ClientCertificate, Secret, secret};
use zeroize::Zeroize;

/// Overwrites every secret field of `secret` with zeros (and empties it).
pub fn wipe(secret: &mut Secret) {
    match &mut secret.kind {
        Some(secret::Kind::ApiKey(key)) => key.key.zeroize(),
        Some(secret::Kind::Basic(basic)) => {
            basic.username.zeroize();
            basic.password.zeroize();
        }
        Some(secret::Kind::Oauth2Client(client)) => {
            client.client_secret.zeroize();
            client.password.zeroize();
            if let Some(certificate) = &mut client.client_certificate {
                wipe_certificate(certificate);
            }
        }
        Some(secret::Kind::ClientCertificate(certificate)) => wipe_certificate(certificate),
        Some(secret::Kind::WebhookSecret(webhook)) => webhook.secret.zeroize(),
        None => {}
    }
}

fn wipe_certificate(certificate: &mut ClientCertificate) {
    // Only the key is secret; the chain and CA are public, but cost nothing to clear.
    certificate.private_key_pem.zeroize();
    certificate.certificate_chain_pem.zeroize();
}

/// A decoded secret that is wiped when dropped: what the lease cache keeps. Debug output is
/// redacted.
pub struct Wiped(Secret);

impl std::fmt::Debug for Wiped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wiped([redacted])")
    }
}

impl Wiped {
    pub fn new(secret: Secret) -> Wiped {
        Wiped(secret)
    }

    pub fn secret(&self) -> &Secret {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use plugboard_proto::credentials::v1::{Basic, OAuth2Client};

    use super::*;

    #[test]
    fn every_secret_field_is_cleared() {
        let mut basic = Secret {
            kind: Some(secret::Kind::Basic(Basic {
                username: "user".into(),
                password: "hunter2".into(),
            })),
        };
        wipe(&mut basic);
        assert_eq!(
            basic.kind,
            Some(secret::Kind::Basic(Basic::default())),
            "emptied"
        );
        let mut client = Secret {
            kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                client_id: "id".into(),
                client_secret: "s3cret".into(),
                client_certificate: Some(ClientCertificate {
                    private_key_pem: "-----BEGIN PRIVATE KEY-----".into(),
                    ..ClientCertificate::default()
                }),
                ..OAuth2Client::default()
            })),
        };
        wipe(&mut client);
        let Some(secret::Kind::Oauth2Client(client)) = client.kind else {
            panic!("still a client");
        };
        assert!(client.client_secret.is_empty() && client.client_id == "id");
        assert!(
            client
                .client_certificate
                .unwrap()
                .private_key_pem
                .is_empty()
        );
    }
}
