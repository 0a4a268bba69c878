//! Health pings: a raw client stream ([`HealthSender`]) and a pinger that keeps one going on an
//! interval ([`HealthPinger`]).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{Error, Result};
use crate::proto::{self, sdk_client::SdkClient};

/// One open Health stream: each [`ping`](Self::ping) is one health message.
#[derive(Debug)]
pub struct HealthSender {
    pings: mpsc::Sender<proto::Empty>,
    call: JoinHandle<Result<()>>,
}

impl HealthSender {
    pub(crate) fn open(client: SdkClient<Channel>) -> Self {
        let (pings, rx) = mpsc::channel(8);
        let mut client = client;
        let call = tokio::spawn(async move {
            client.health(ReceiverStream::new(rx)).await.map(drop).map_err(Error::rpc("Health"))
        });
        Self { pings, call }
    }

    /// Sends one ping. Fails with [`Error::HealthClosed`] once the stream has ended.
    pub async fn ping(&self) -> Result<()> {
        self.pings.send(proto::Empty {}).await.map_err(|_| Error::HealthClosed)
    }

    /// Ends the stream and waits for the sidecar's answer.
    pub async fn close(self) -> Result<()> {
        drop(self.pings);
        self.call.await.unwrap_or(Err(Error::HealthClosed))
    }
}

/// Pings the sidecar every interval until dropped, reopening the stream if it breaks.
#[derive(Debug)]
pub struct HealthPinger {
    task: JoinHandle<()>,
}

impl HealthPinger {
    pub(crate) fn start(client: SdkClient<Channel>, interval: Duration) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sender = HealthSender::open(client.clone());
            loop {
                ticks.tick().await;
                if let Err(error) = sender.ping().await {
                    tracing::warn!(%error, "health ping failed; reopening the health stream");
                    sender = HealthSender::open(client.clone());
                }
            }
        });
        Self { task }
    }

    /// Stops pinging (dropping the pinger does the same).
    pub fn stop(self) {}
}

impl Drop for HealthPinger {
    fn drop(&mut self) {
        self.task.abort();
    }
}
