//! The client a Rust game server links: connect to the sidecar, then call the SDK.

mod error;
mod extensions;
mod health;

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};

pub use self::error::{Error, Result};
pub use self::extensions::{AlphaSdk, BetaSdk};
pub use self::health::{HealthPinger, HealthSender};
use crate::proto::{self, sdk_client::SdkClient};

/// Where the sidecar is and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdkConfig {
    /// Host of the sidecar (`AGONES_SDK_GRPC_HOST`, default `localhost`).
    pub host: String,
    /// gRPC port of the sidecar (`AGONES_SDK_GRPC_PORT`, default 9357).
    pub port: u16,
    /// How long [`Sdk::connect_with`] keeps retrying while the sidecar starts.
    pub connect_timeout: Duration,
}

impl Default for SdkConfig {
    fn default() -> Self {
        Self { host: "localhost".to_owned(), port: crate::DEFAULT_GRPC_PORT, connect_timeout: Duration::from_secs(30) }
    }
}

impl SdkConfig {
    /// The defaults, overridden by `AGONES_SDK_GRPC_HOST` and `AGONES_SDK_GRPC_PORT`.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        if let Ok(host) = std::env::var("AGONES_SDK_GRPC_HOST")
            && !host.trim().is_empty()
        {
            config.host = host.trim().to_owned();
        }
        if let Ok(port) = std::env::var("AGONES_SDK_GRPC_PORT")
            && !port.trim().is_empty()
        {
            config.port = port.trim().parse().map_err(|_| Error::InvalidEndpoint {
                endpoint: port.clone(),
                reason: "AGONES_SDK_GRPC_PORT must be a port number (1-65535)".to_owned(),
            })?;
        }
        Ok(config)
    }

    fn uri(&self) -> String {
        if self.host.contains("://") {
            format!("{}:{}", self.host, self.port)
        } else if self.host.contains(':') && !self.host.starts_with('[') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// A connection to the SDK sidecar. Cheap to clone; every method can be called concurrently.
#[derive(Clone, Debug)]
pub struct Sdk {
    channel: Channel,
    client: SdkClient<Channel>,
}

impl Sdk {
    /// Connects using `AGONES_SDK_GRPC_HOST` / `AGONES_SDK_GRPC_PORT`, retrying for up to 30 s
    /// while the sidecar starts.
    pub async fn connect() -> Result<Self> {
        Self::connect_with(SdkConfig::from_env()?).await
    }

    /// Connects to the sidecar described by `config`, retrying until `config.connect_timeout`.
    pub async fn connect_with(config: SdkConfig) -> Result<Self> {
        let uri = config.uri();
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| Error::InvalidEndpoint { endpoint: uri.clone(), reason: e.to_string() })?
            .connect_timeout(Duration::from_secs(1).min(config.connect_timeout.max(Duration::from_millis(100))));
        let started = Instant::now();
        loop {
            match endpoint.connect().await {
                Ok(channel) => return Ok(Self::from_channel(channel)),
                Err(source) if started.elapsed() >= config.connect_timeout => {
                    return Err(Error::Connect { endpoint: uri, waited: started.elapsed(), source });
                }
                Err(error) => {
                    tracing::debug!(endpoint = %uri, %error, "SDK sidecar not up yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Wraps an existing channel (custom transports, tests).
    pub fn from_channel(channel: Channel) -> Self {
        Self { client: SdkClient::new(channel.clone()), channel }
    }

    fn client(&self) -> SdkClient<Channel> {
        self.client.clone()
    }

    /// The game is ready for players.
    pub async fn ready(&self) -> Result<()> {
        self.client().ready(proto::Empty {}).await.map_err(Error::rpc("Ready"))?;
        Ok(())
    }

    /// Marks this server Allocated (the game found its own players).
    pub async fn allocate(&self) -> Result<()> {
        self.client().allocate(proto::Empty {}).await.map_err(Error::rpc("Allocate"))?;
        Ok(())
    }

    /// The game is done; the server shuts down.
    pub async fn shutdown(&self) -> Result<()> {
        self.client().shutdown(proto::Empty {}).await.map_err(Error::rpc("Shutdown"))?;
        Ok(())
    }

    /// Reserves the server for `duration` (whole seconds, rounded down; zero: until the next
    /// Ready/Allocate/Shutdown), after which it returns to Ready.
    pub async fn reserve(&self, duration: Duration) -> Result<()> {
        let seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        self.client().reserve(proto::Duration { seconds }).await.map_err(Error::rpc("Reserve"))?;
        Ok(())
    }

    /// Opens a Health stream to ping by hand. Must be called inside a Tokio runtime.
    pub fn health(&self) -> HealthSender {
        HealthSender::open(self.client())
    }

    /// Pings every `interval` until the returned handle is dropped. Must be called inside a Tokio
    /// runtime.
    pub fn health_pinger(&self, interval: Duration) -> HealthPinger {
        HealthPinger::start(self.client(), interval)
    }

    /// Sets label `agones.dev/sdk-<key>` (INVALID_ARGUMENT when not a valid label).
    pub async fn set_label(&self, key: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let request = proto::KeyValue { key: key.into(), value: value.into() };
        self.client().set_label(request).await.map_err(Error::rpc("SetLabel"))?;
        Ok(())
    }

    /// Sets annotation `agones.dev/sdk-<key>`.
    pub async fn set_annotation(&self, key: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let request = proto::KeyValue { key: key.into(), value: value.into() };
        self.client().set_annotation(request).await.map_err(Error::rpc("SetAnnotation"))?;
        Ok(())
    }

    /// This server's GameServer, as the SDK sees it.
    pub async fn game_server(&self) -> Result<proto::GameServer> {
        Ok(self.client().get_game_server(proto::Empty {}).await.map_err(Error::rpc("GetGameServer"))?.into_inner())
    }

    /// The GameServer now, then after every change.
    pub async fn watch_game_server(&self) -> Result<impl Stream<Item = Result<proto::GameServer>> + Send + 'static> {
        let stream =
            self.client().watch_game_server(proto::Empty {}).await.map_err(Error::rpc("WatchGameServer"))?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::rpc("WatchGameServer"))))
    }

    /// Player tracking (alpha).
    pub fn alpha(&self) -> AlphaSdk {
        AlphaSdk::new(self.channel.clone())
    }

    /// Counters and lists (beta).
    pub fn beta(&self) -> BetaSdk {
        BetaSdk::new(self.channel.clone())
    }
}
