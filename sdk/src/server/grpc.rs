//! The three gRPC services (`agones.dev.sdk.SDK`, `.alpha.SDK`, `.beta.SDK`) as translations onto
//! [`Sidecar`]. Malformed messages and unknown methods are answered by tonic itself with
//! INTERNAL / UNIMPLEMENTED statuses; nothing here can panic on input.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use stadion_crds::common::{CounterStatus, ListStatus};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::Sidecar;
use super::convert::to_proto;
use super::tracking::CounterUpdate;
use crate::proto::{self, alpha, beta};

type GrpcResult<T> = Result<Response<T>, Status>;

/// Resolves once the server is shutting down, so long-lived streams end and let it stop.
pub(crate) async fn stopped(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone: that is a shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// `agones.dev.sdk.SDK`.
#[derive(Clone, Debug)]
pub struct StableService {
    sidecar: Sidecar,
    shutdown: watch::Receiver<bool>,
}

impl StableService {
    /// The stable service over `sidecar`; streams end when `shutdown` turns true.
    pub fn new(sidecar: Sidecar, shutdown: watch::Receiver<bool>) -> Self {
        Self { sidecar, shutdown }
    }
}

#[tonic::async_trait]
impl proto::sdk_server::Sdk for StableService {
    async fn ready(&self, _: Request<proto::Empty>) -> GrpcResult<proto::Empty> {
        self.sidecar.ready().await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn allocate(&self, _: Request<proto::Empty>) -> GrpcResult<proto::Empty> {
        self.sidecar.allocate().await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn shutdown(&self, _: Request<proto::Empty>) -> GrpcResult<proto::Empty> {
        self.sidecar.shutdown().await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn health(&self, request: Request<Streaming<proto::Empty>>) -> GrpcResult<proto::Empty> {
        let mut pings = request.into_inner();
        loop {
            tokio::select! {
                ping = pings.next() => match ping {
                    Some(Ok(_)) => self.sidecar.health_ping(),
                    Some(Err(status)) => {
                        tracing::debug!(%status, "health stream broke");
                        return Err(status);
                    }
                    None => break,
                },
                () = stopped(self.shutdown.clone()) => break,
            }
        }
        Ok(Response::new(proto::Empty {}))
    }

    async fn get_game_server(&self, _: Request<proto::Empty>) -> GrpcResult<proto::GameServer> {
        Ok(Response::new(to_proto(&self.sidecar.get_game_server().await?)))
    }

    type WatchGameServerStream = Pin<Box<dyn Stream<Item = Result<proto::GameServer, Status>> + Send>>;

    async fn watch_game_server(&self, _: Request<proto::Empty>) -> GrpcResult<Self::WatchGameServerStream> {
        let stream =
            self.sidecar.watch_game_server().map(|gs| Ok(to_proto(&gs))).take_until(stopped(self.shutdown.clone()));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_label(&self, request: Request<proto::KeyValue>) -> GrpcResult<proto::Empty> {
        let proto::KeyValue { key, value } = request.into_inner();
        self.sidecar.set_label(key, value).await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn set_annotation(&self, request: Request<proto::KeyValue>) -> GrpcResult<proto::Empty> {
        let proto::KeyValue { key, value } = request.into_inner();
        self.sidecar.set_annotation(key, value).await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn reserve(&self, request: Request<proto::Duration>) -> GrpcResult<proto::Empty> {
        self.sidecar.reserve(request.into_inner().seconds).await?;
        Ok(Response::new(proto::Empty {}))
    }
}

/// `agones.dev.sdk.alpha.SDK`: player tracking.
#[derive(Clone, Debug)]
pub struct AlphaService {
    sidecar: Sidecar,
}

impl AlphaService {
    /// The alpha service over `sidecar`.
    pub fn new(sidecar: Sidecar) -> Self {
        Self { sidecar }
    }
}

#[tonic::async_trait]
impl alpha::sdk_server::Sdk for AlphaService {
    async fn player_connect(&self, request: Request<alpha::PlayerId>) -> GrpcResult<alpha::Bool> {
        let added = self.sidecar.player_connect(request.into_inner().player_id).await?;
        Ok(Response::new(alpha::Bool { bool: added }))
    }

    async fn player_disconnect(&self, request: Request<alpha::PlayerId>) -> GrpcResult<alpha::Bool> {
        let removed = self.sidecar.player_disconnect(request.into_inner().player_id).await?;
        Ok(Response::new(alpha::Bool { bool: removed }))
    }

    async fn set_player_capacity(&self, request: Request<alpha::Count>) -> GrpcResult<alpha::Empty> {
        self.sidecar.set_player_capacity(request.into_inner().count).await?;
        Ok(Response::new(alpha::Empty {}))
    }

    async fn get_player_capacity(&self, _: Request<alpha::Empty>) -> GrpcResult<alpha::Count> {
        Ok(Response::new(alpha::Count { count: self.sidecar.get_player_capacity().await? }))
    }

    async fn get_player_count(&self, _: Request<alpha::Empty>) -> GrpcResult<alpha::Count> {
        Ok(Response::new(alpha::Count { count: self.sidecar.get_player_count().await? }))
    }

    async fn is_player_connected(&self, request: Request<alpha::PlayerId>) -> GrpcResult<alpha::Bool> {
        let connected = self.sidecar.is_player_connected(request.into_inner().player_id).await?;
        Ok(Response::new(alpha::Bool { bool: connected }))
    }

    async fn get_connected_players(&self, _: Request<alpha::Empty>) -> GrpcResult<alpha::PlayerIdList> {
        Ok(Response::new(alpha::PlayerIdList { list: self.sidecar.get_connected_players().await? }))
    }
}

/// `agones.dev.sdk.beta.SDK`: counters and lists.
#[derive(Clone, Debug)]
pub struct BetaService {
    sidecar: Sidecar,
}

impl BetaService {
    /// The beta service over `sidecar`.
    pub fn new(sidecar: Sidecar) -> Self {
        Self { sidecar }
    }
}

/// The beta Counter message for a named counter.
pub fn counter_message(name: String, counter: CounterStatus) -> beta::Counter {
    beta::Counter { name, count: counter.count, capacity: counter.capacity }
}

/// The beta List message for a named list.
pub fn list_message(name: String, list: ListStatus) -> beta::List {
    beta::List { name, capacity: list.capacity, values: list.values }
}

#[tonic::async_trait]
impl beta::sdk_server::Sdk for BetaService {
    async fn get_counter(&self, request: Request<beta::GetCounterRequest>) -> GrpcResult<beta::Counter> {
        let name = request.into_inner().name;
        let counter = self.sidecar.get_counter(name.clone()).await?;
        Ok(Response::new(counter_message(name, counter)))
    }

    async fn update_counter(&self, request: Request<beta::UpdateCounterRequest>) -> GrpcResult<beta::Counter> {
        let update = request
            .into_inner()
            .counter_update_request
            .ok_or_else(|| Status::invalid_argument("counterUpdateRequest is required"))?;
        let change = CounterUpdate { count: update.count, capacity: update.capacity, diff: update.count_diff };
        let counter = self.sidecar.update_counter(update.name.clone(), change).await?;
        Ok(Response::new(counter_message(update.name, counter)))
    }

    async fn get_list(&self, request: Request<beta::GetListRequest>) -> GrpcResult<beta::List> {
        let name = request.into_inner().name;
        let list = self.sidecar.get_list(name.clone()).await?;
        Ok(Response::new(list_message(name, list)))
    }

    async fn update_list(&self, request: Request<beta::UpdateListRequest>) -> GrpcResult<beta::List> {
        let request = request.into_inner();
        let list = request.list.ok_or_else(|| Status::invalid_argument("list is required"))?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let new = ListStatus { capacity: list.capacity, values: list.values };
        let updated = self.sidecar.update_list(list.name.clone(), paths, new).await?;
        Ok(Response::new(list_message(list.name, updated)))
    }

    async fn add_list_value(&self, request: Request<beta::AddListValueRequest>) -> GrpcResult<beta::List> {
        let beta::AddListValueRequest { name, value } = request.into_inner();
        let list = self.sidecar.add_list_value(name.clone(), value).await?;
        Ok(Response::new(list_message(name, list)))
    }

    async fn remove_list_value(&self, request: Request<beta::RemoveListValueRequest>) -> GrpcResult<beta::List> {
        let beta::RemoveListValueRequest { name, value } = request.into_inner();
        let list = self.sidecar.remove_list_value(name.clone(), value).await?;
        Ok(Response::new(list_message(name, list)))
    }
}
