//! The thin gRPC adapter over [`Connector`].

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use plugboard_proto::connector::v1::connector_service_server::ConnectorService;
use plugboard_proto::connector::v1::write_request::Mapped;
use plugboard_proto::connector::v1::{
    CheckRequest, CheckResponse, ConnectionRef, DiscoverRequest, DiscoverResponse,
    HandleWebhookRequest, HandleWebhookResponse, ParseDocumentRequest, ParseDocumentResponse,
    ReadRequest, ReadResponse, WriteRequest, WriteResponse,
};
use plugboard_proto::error::to_status;
use plugboard_runtime::identity::Caller;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::connector::{Connector, DocumentParams, MappedBody, ReadParams, WriteParams};
use crate::error::Error;
use crate::webhook_events::WebhookHandler;

/// Pages buffered between the partner and a slow reader.
const PAGE_BUFFER: usize = 2;

pub struct GrpcConnectorAdapter {
    connector: Arc<Connector>,
    webhooks: Option<Arc<WebhookHandler>>,
}

impl GrpcConnectorAdapter {
    pub fn new(connector: Arc<Connector>) -> GrpcConnectorAdapter {
        GrpcConnectorAdapter {
            connector,
            webhooks: None,
        }
    }

    /// Serves `HandleWebhook` with `handler`; without one the RPC answers FAILED_PRECONDITION.
    pub fn with_webhooks(mut self, handler: Arc<WebhookHandler>) -> GrpcConnectorAdapter {
        self.webhooks = Some(handler);
        self
    }
}

fn connection(connection: Option<ConnectionRef>) -> Result<ConnectionRef, Status> {
    connection
        .filter(|connection| !connection.connection_id.is_empty())
        .ok_or_else(|| {
            to_status(&Error::InvalidSettings(
                "connection.connection_id is required".to_owned(),
            ))
        })
}

#[tonic::async_trait]
impl ConnectorService for GrpcConnectorAdapter {
    #[tracing::instrument(skip_all, fields(connection_id))]
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let connection = connection(request.into_inner().connection)?;
        tracing::Span::current().record("connection_id", connection.connection_id.as_str());
        let response = self
            .connector
            .check(&tenant, &connection)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn discover(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        Caller::tenant_of(&request)?;
        Ok(Response::new(self.connector.discover()))
    }

    type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResponse, Status>> + Send + 'static>>;

    #[tracing::instrument(skip_all, fields(connection_id, stream))]
    async fn read(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let connection = connection(request.connection)?;
        let span = tracing::Span::current();
        span.record("connection_id", connection.connection_id.as_str());
        span.record("stream", request.stream.as_str());
        let params = ReadParams {
            tenant,
            connection,
            stream: request.stream,
            checkpoint: request.checkpoint,
            page_size: request.page_size,
            run_id: request.run_id,
        };
        let settings = self
            .connector
            .prepare(&params)
            .await
            .map_err(|e| to_status(&e))?;
        let (sender, receiver) = mpsc::channel(PAGE_BUFFER);
        let connector = Arc::clone(&self.connector);
        tokio::spawn(
            async move { connector.read(params, settings, sender).await }.instrument(span),
        );
        let pages = ReceiverStream::new(receiver).map(|page| page.map_err(|e| to_status(&e)));
        Ok(Response::new(Box::pin(pages)))
    }

    #[tracing::instrument(skip_all, fields(connection_id, entity, external_id))]
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let connection = connection(request.connection)?;
        let span = tracing::Span::current();
        span.record("connection_id", connection.connection_id.as_str());
        span.record("entity", request.entity.as_str());
        span.record("external_id", request.external_id.as_str());
        let outcome = self
            .connector
            .write(WriteParams {
                tenant,
                connection,
                entity: request.entity,
                external_id: request.external_id,
                record_json: request.record_json,
                idempotency_key: request.idempotency_key,
                earlier_attempt_unconfirmed: request.earlier_attempt_unconfirmed,
                mapped: request.mapped.map(|mapped| match mapped {
                    Mapped::MappedBodyJson(json) => MappedBody::Payload(json),
                    Mapped::MappingError(reason) => MappedBody::Refused(reason),
                }),
            })
            .await
            .map_err(|e| to_status(&e))?;
        tracing::debug!(external_id = %outcome.external_id, "record written to the partner");
        Ok(Response::new(WriteResponse {
            external_id: outcome.external_id,
            partner_payload_json: outcome.answer.to_string(),
        }))
    }

    #[tracing::instrument(skip_all, fields(connection_id))]
    async fn handle_webhook(
        &self,
        request: Request<HandleWebhookRequest>,
    ) -> Result<Response<HandleWebhookResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let connection = connection(request.connection.clone())?;
        tracing::Span::current().record("connection_id", connection.connection_id.as_str());
        let handler = self
            .webhooks
            .as_ref()
            .ok_or_else(|| to_status(&Error::NoWebhooks(self.connector.manifest().name.clone())))?;
        let now = chrono::Utc::now().timestamp();
        match handler.handle(&tenant, &request, now).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => {
                if let Error::WebhookRejected(reason) = &error {
                    tracing::info!(reason = %reason, "rejected a webhook delivery");
                }
                Err(to_status(&error))
            }
        }
    }

    #[tracing::instrument(skip_all, fields(connection_id, document_type, bytes))]
    async fn parse_document(
        &self,
        request: Request<ParseDocumentRequest>,
    ) -> Result<Response<ParseDocumentResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let connection = connection(request.connection)?;
        let span = tracing::Span::current();
        span.record("connection_id", connection.connection_id.as_str());
        span.record("document_type", request.document_type.as_str());
        span.record("bytes", request.content.len());
        let outcome = self
            .connector
            .parse_document(DocumentParams {
                tenant,
                connection,
                document_type: request.document_type,
                content: request.content,
                file_name: request.file_name,
                content_type: request.content_type,
            })
            .await
            .map_err(|e| to_status(&e))?;
        tracing::info!(document_id = %outcome.document_id, polls = outcome.polls, "parsed a document");
        Ok(Response::new(ParseDocumentResponse {
            document_id: outcome.document_id,
            record: Some(outcome.record),
            entities: outcome.entities,
            polls: outcome.polls,
            cost: outcome
                .cost
                .map(|(amount, currency)| plugboard_proto::common::v1::Money { amount, currency }),
        }))
    }
}
