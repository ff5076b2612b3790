//! The thin gRPC adapter over [`BullhornConnector`].

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use plugboard_proto::connector::v1::connector_service_server::ConnectorService;
use plugboard_proto::connector::v1::{
    CheckRequest, CheckResponse, ConnectionRef, DiscoverRequest, DiscoverResponse, ReadRequest,
    ReadResponse, WriteRequest, WriteResponse,
};
use plugboard_proto::error::to_status;
use plugboard_runtime::identity::Caller;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::Error;
use crate::service::{BullhornConnector, ReadParams};

/// Pages buffered between the partner and a slow reader.
const PAGE_BUFFER: usize = 2;

pub struct GrpcConnectorAdapter {
    connector: Arc<BullhornConnector>,
}

impl GrpcConnectorAdapter {
    pub fn new(connector: Arc<BullhornConnector>) -> GrpcConnectorAdapter {
        GrpcConnectorAdapter { connector }
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
    /// Bullhorn is read-only for now: a push to it fails at once with a reason, rather than
    /// waiting in the outbox for a write that never comes. TODO(#6): candidate writes.
    #[tracing::instrument(skip_all, fields(entity = %request.get_ref().entity))]
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        Caller::tenant_of(&request)?;
        Err(to_status(&Error::WriteUnsupported(
            request.into_inner().entity,
        )))
    }

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

    #[tracing::instrument(skip_all)]
    async fn handle_webhook(
        &self,
        request: Request<plugboard_proto::connector::v1::HandleWebhookRequest>,
    ) -> Result<Response<plugboard_proto::connector::v1::HandleWebhookResponse>, Status> {
        Caller::tenant_of(&request)?;
        Err(to_status(&Error::NoWebhooks))
    }
}
