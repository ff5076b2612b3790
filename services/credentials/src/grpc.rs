//! The thin gRPC adapter: takes the verified caller, calls the domain, maps errors once.

use plugboard_proto::credentials::v1::credentials_admin_service_server::CredentialsAdminService;
use plugboard_proto::credentials::v1::credentials_service_server::CredentialsService;
use plugboard_proto::credentials::v1::o_auth_service_server::OAuthService;
use plugboard_proto::credentials::v1::{
    AuditRecord, BeginOAuthRequest, BeginOAuthResponse, CompleteOAuthRequest,
    CompleteOAuthResponse, DescribeCredentialRequest, DescribeCredentialResponse,
    LeaseAccessRequest, LeaseAccessResponse, ListAuditRequest, ListAuditResponse,
    PutCredentialRequest, PutCredentialResponse, RevokeRequest, RevokeResponse,
    RotateDataKeyRequest, RotateDataKeyResponse, RotateMasterKeyRequest, RotateMasterKeyResponse,
};
use plugboard_proto::error::to_status;
use plugboard_runtime::identity::Caller;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::service::{Actor, Credentials};

/// The status of `error`, with a `retry-after` (seconds) header when the error says when to
/// come back.
fn status_of(error: &Error) -> Status {
    let mut status = to_status(error);
    if let Some(seconds) = error.retry_after_secs()
        && let Ok(value) = seconds.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// Serves [`Credentials`] as `plugboard.credentials.v1.CredentialsService`. Wrap it in
/// `RequireCaller`: every handler needs a verified caller acting for a tenant.
#[derive(Debug, Clone)]
pub struct GrpcCredentialsAdapter {
    credentials: Credentials,
}

impl GrpcCredentialsAdapter {
    pub fn new(credentials: Credentials) -> GrpcCredentialsAdapter {
        GrpcCredentialsAdapter { credentials }
    }
}

/// The actor of a request: its verified caller and the tenant from the token, never the body.
fn actor_of<T>(request: &Request<T>) -> Result<Actor, Status> {
    let tenant = Caller::tenant_of(request)?;
    Ok(Actor::new(Caller::of(request)?, tenant))
}

#[tonic::async_trait]
impl CredentialsService for GrpcCredentialsAdapter {
    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn put_credential(
        &self,
        request: Request<PutCredentialRequest>,
    ) -> Result<Response<PutCredentialResponse>, Status> {
        let actor = actor_of(&request)?;
        let body = request.into_inner();
        let version = self
            .credentials
            .put(&actor, &body.connection_id, &body.connector, body.secret)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(PutCredentialResponse { version }))
    }

    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn lease_access(
        &self,
        request: Request<LeaseAccessRequest>,
    ) -> Result<Response<LeaseAccessResponse>, Status> {
        let actor = actor_of(&request)?;
        let body = request.get_ref();
        let lease = match body.secret_kind.as_str() {
            "" => {
                self.credentials
                    .lease(
                        &actor,
                        &body.connection_id,
                        &body.run_id,
                        Some(body.refused_access_token_sha256.as_str())
                            .filter(|digest| !digest.is_empty()),
                    )
                    .await
            }
            crate::webhook_secret::SECRET_KIND => {
                self.credentials
                    .lease_webhook_secret(&actor, &body.connection_id)
                    .await
            }
            _ => Err(Error::InvalidArgument {
                field: "secret_kind",
                reason: "must be empty or webhook_secret".to_owned(),
            }),
        }
        .map_err(|error| status_of(&error))?;
        let (access_token, token_type, access_token_expires_at) = match lease.access {
            Some(access) => (
                access.access_token,
                access.token_type,
                chrono::DateTime::from_timestamp(access.expires_at, 0)
                    .map(plugboard_runtime::storage::format_time)
                    .unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Ok(Response::new(LeaseAccessResponse {
            secret: Some(lease.secret.expose()),
            version: lease.version,
            expires_at: lease.expires_at,
            access_token,
            token_type,
            access_token_expires_at,
        }))
    }

    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn revoke(
        &self,
        request: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let actor = actor_of(&request)?;
        self.credentials
            .revoke(&actor, &request.get_ref().connection_id)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(RevokeResponse {}))
    }

    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn describe_credential(
        &self,
        request: Request<DescribeCredentialRequest>,
    ) -> Result<Response<DescribeCredentialResponse>, Status> {
        let actor = actor_of(&request)?;
        let description = self
            .credentials
            .describe(&actor, &request.get_ref().connection_id)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(DescribeCredentialResponse {
            connection_id: description.connection_id,
            connector: description.connector,
            kind: description.kind,
            version: description.version,
            updated_at: description.updated_at,
        }))
    }

    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let actor = actor_of(&request)?;
        let body = request.get_ref();
        let page = self
            .credentials
            .audit_page(
                &actor,
                &body.connection_id,
                body.page_size,
                &body.page_token,
            )
            .await
            .map_err(|error| status_of(&error))?;
        let records = page
            .rows
            .into_iter()
            .map(|row| AuditRecord {
                at: row.entry.at,
                connection_id: row.entry.connection_id,
                subject: row.entry.subject,
                action: row.entry.action,
                outcome: row.entry.outcome,
                run_id: row.entry.run_id,
                version: row.entry.version,
            })
            .collect();
        Ok(Response::new(ListAuditResponse {
            records,
            next_page_token: page.next_page_token,
        }))
    }
}

/// Serves the authorization code connect flow as `plugboard.credentials.v1.OAuthService`.
/// Wrap it in `RequireCaller`.
#[derive(Debug, Clone)]
pub struct GrpcOAuthAdapter {
    credentials: Credentials,
}

impl GrpcOAuthAdapter {
    pub fn new(credentials: Credentials) -> GrpcOAuthAdapter {
        GrpcOAuthAdapter { credentials }
    }
}

#[tonic::async_trait]
impl OAuthService for GrpcOAuthAdapter {
    #[tracing::instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn begin_o_auth(
        &self,
        request: Request<BeginOAuthRequest>,
    ) -> Result<Response<BeginOAuthResponse>, Status> {
        let actor = actor_of(&request)?;
        let body = request.into_inner();
        let begun = self
            .credentials
            .begin_oauth(
                &actor,
                &body.connection_id,
                &body.connector,
                body.client,
                &body.authorize_url,
                &body.redirect_uri,
                body.reuse_stored_client,
            )
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(BeginOAuthResponse {
            authorize_url: begun.authorize_url,
            state: begun.state,
            expires_at: begun.expires_at,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn complete_o_auth(
        &self,
        request: Request<CompleteOAuthRequest>,
    ) -> Result<Response<CompleteOAuthResponse>, Status> {
        let actor = actor_of(&request)?;
        let body = request.get_ref();
        let completed = self
            .credentials
            .complete_oauth(&actor, &body.state, &body.code, &body.error)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(CompleteOAuthResponse {
            connection_id: completed.connection_id,
            version: completed.version,
        }))
    }
}

/// Serves key management as `plugboard.credentials.v1.CredentialsAdminService`, for admin
/// callers only (see [`crate::admin`]). Wrap it in `RequireCaller`.
#[derive(Debug, Clone)]
pub struct GrpcAdminAdapter {
    credentials: Credentials,
}

impl GrpcAdminAdapter {
    pub fn new(credentials: Credentials) -> GrpcAdminAdapter {
        GrpcAdminAdapter { credentials }
    }
}

fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[tonic::async_trait]
impl CredentialsAdminService for GrpcAdminAdapter {
    #[tracing::instrument(skip_all, fields(batch_size = request.get_ref().batch_size))]
    async fn rotate_master_key(
        &self,
        request: Request<RotateMasterKeyRequest>,
    ) -> Result<Response<RotateMasterKeyResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let rotation = self
            .credentials
            .rotate_master_key(&caller, request.get_ref().batch_size)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(RotateMasterKeyResponse {
            master_key_id: rotation.master_key_id,
            data_keys: count(rotation.data_keys),
            rewrapped: count(rotation.rewrapped),
        }))
    }

    #[tracing::instrument(skip_all, fields(batch_size = request.get_ref().batch_size))]
    async fn rotate_data_key(
        &self,
        request: Request<RotateDataKeyRequest>,
    ) -> Result<Response<RotateDataKeyResponse>, Status> {
        let actor = actor_of(&request)?;
        let rotation = self
            .credentials
            .rotate_data_key(&actor, request.get_ref().batch_size)
            .await
            .map_err(|error| status_of(&error))?;
        Ok(Response::new(RotateDataKeyResponse {
            data_key_id: rotation.data_key_id,
            previous_data_key_id: rotation.previous_data_key_id,
            resealed: count(rotation.resealed),
            retired_deleted: count(rotation.retired_deleted),
            retired_kept: count(rotation.retired_kept),
        }))
    }
}
