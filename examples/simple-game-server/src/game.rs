//! The running game: one UDP socket (and optionally a TCP listener on the same port number),
//! each message echoed or executed as a command against the SDK.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stadion_sdk::{HealthPinger, Sdk};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::command::{self, Command, Message};

/// Largest datagram read; longer ones are truncated by the OS, which is fine for an echo server.
const MAX_DATAGRAM: usize = 64 * 1024;

/// Why the game is ending on its own (rather than on a signal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// A client sent `EXIT`.
    ExitCommand,
    /// A client sent `EXIT` but SDK Shutdown failed.
    ShutdownFailed,
    /// The automatic shutdown delay after allocation passed.
    AfterAllocation,
}

/// The answer to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The line sent back.
    pub text: String,
    /// Whether the process ends once the reply is sent (`EXIT`).
    pub exit: bool,
}

/// The game's shared state: its SDK connection, its name and its health pinger.
#[derive(Debug)]
pub struct Game {
    sdk: Sdk,
    name: String,
    health_interval: Duration,
    pinger: Mutex<Option<HealthPinger>>,
    exit: mpsc::Sender<ExitReason>,
}

impl Game {
    /// A game for GameServer `name`; ending requests arrive on the receiver.
    pub fn new(sdk: Sdk, name: String, health_interval: Duration) -> (Arc<Self>, mpsc::Receiver<ExitReason>) {
        let (exit, exits) = mpsc::channel(4);
        (Arc::new(Self { sdk, name, health_interval, pinger: Mutex::new(None), exit }), exits)
    }

    /// The GameServer's name, which prefixes every echo.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SDK connection.
    pub fn sdk(&self) -> &Sdk {
        &self.sdk
    }

    /// Asks the main loop to end the process.
    pub fn request_exit(&self, reason: ExitReason) {
        // Full only if an exit is already pending, which ends the process just the same.
        let _ = self.exit.try_send(reason);
    }

    fn pinger(&self) -> MutexGuard<'_, Option<HealthPinger>> {
        // The guarded value is a handle that is only ever replaced whole: still valid after a panic.
        self.pinger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts pinging health every interval (must run inside the Tokio runtime).
    pub fn start_health(&self) {
        *self.pinger() = Some(self.sdk.health_pinger(self.health_interval));
    }

    /// The reply to one datagram or line. Send it, then call [`Game::after_reply`].
    pub async fn handle(&self, input: &str) -> Reply {
        let text = match command::parse(input) {
            Ok(Message::Echo(payload)) => command::echo(&self.name, &payload),
            // Acknowledged before acting: once the sidecar records Shutdown the runtime may stop
            // the process at any moment, and the client must still learn its EXIT arrived.
            Ok(Message::Command(Command::Exit)) => {
                tracing::info!(gameserver = %self.name, command = "EXIT", "command received");
                return Reply { text: command::ack(&Command::Exit, None), exit: true };
            }
            Ok(Message::Command(command)) => self.execute(command).await,
            Err(usage) => {
                tracing::debug!(gameserver = %self.name, %usage, "malformed command");
                command::error(usage.keyword, &usage)
            }
        };
        Reply { text, exit: false }
    }

    /// What follows a sent reply: for `EXIT`, SDK Shutdown and the end of the process.
    pub async fn after_reply(&self, reply: &Reply) {
        if !reply.exit {
            return;
        }
        match self.sdk.shutdown().await {
            Ok(()) => self.request_exit(ExitReason::ExitCommand),
            Err(error) => {
                tracing::error!(gameserver = %self.name, %error, "SDK Shutdown failed");
                self.request_exit(ExitReason::ShutdownFailed);
            }
        }
    }

    async fn execute(&self, command: Command) -> String {
        tracing::info!(gameserver = %self.name, command = command.keyword(), "command received");
        match self.run(&command).await {
            Ok(detail) => command::ack(&command, detail.as_deref()),
            Err(error) => {
                tracing::warn!(gameserver = %self.name, command = command.keyword(), %error, "command failed");
                command::error(command.keyword(), &error)
            }
        }
    }

    /// Carries out a command; `Ok(Some(detail))` adds the detail to the ACK line.
    async fn run(&self, command: &Command) -> anyhow::Result<Option<String>> {
        let sdk = &self.sdk;
        match command {
            // Handled in `handle`/`after_reply`, so the ACK goes out first.
            Command::Exit => {}
            Command::Unhealthy => {
                // Dropping the pinger aborts it; the sidecar's missed-ping count does the rest.
                self.pinger().take();
            }
            Command::Allocate => sdk.allocate().await?,
            Command::Ready => sdk.ready().await?,
            Command::Reserve(duration) => sdk.reserve(*duration).await?,
            Command::Label { key, value } => sdk.set_label(key.as_str(), value.as_str()).await?,
            Command::Annotation { key, value } => sdk.set_annotation(key.as_str(), value.as_str()).await?,
            Command::Players => return Ok(Some(self.player_count().await?.to_string())),
            Command::PlayerConnect(id) => {
                let added = sdk.alpha().player_connect(id.as_str()).await?;
                return Ok(Some(if added { "connected" } else { "already-connected" }.to_owned()));
            }
            Command::PlayerDisconnect(id) => {
                let removed = sdk.alpha().player_disconnect(id.as_str()).await?;
                return Ok(Some(if removed { "disconnected" } else { "not-connected" }.to_owned()));
            }
            Command::GameServer => return Ok(Some(self.describe().await?)),
            Command::List(name) => {
                let list = sdk.beta().get_list(name.as_str()).await?;
                return Ok(Some(format!("{} {}", list.capacity, list.values.join(","))));
            }
            Command::ListAdd { name, value } => {
                let list = sdk.beta().add_list_value(name.as_str(), value.as_str()).await?;
                return Ok(Some(format!("{} {}", list.capacity, list.values.join(","))));
            }
        }
        Ok(None)
    }

    /// The alpha player count; a sidecar without it (player tracking off) still lists the
    /// connected players, so fall back to counting those.
    async fn player_count(&self) -> anyhow::Result<i64> {
        match self.sdk.alpha().get_player_count().await {
            Ok(count) => Ok(count),
            Err(error) => {
                tracing::debug!(gameserver = %self.name, %error, "GetPlayerCount failed; counting connected players");
                let players = self.sdk.alpha().get_connected_players().await?;
                Ok(i64::try_from(players.len()).unwrap_or(i64::MAX))
            }
        }
    }

    /// `{"name","state","labels","annotations"}` of this server, as one JSON line.
    async fn describe(&self) -> anyhow::Result<String> {
        let gs = self.sdk.game_server().await?;
        let meta = gs.object_meta.unwrap_or_default();
        let state = gs.status.map(|s| s.state).unwrap_or_default();
        let described = serde_json::json!({
            "name": meta.name,
            "state": state,
            "labels": meta.labels,
            "annotations": meta.annotations,
        });
        Ok(described.to_string())
    }
}

/// Answers every datagram on `socket` until the task is dropped.
pub async fn serve_udp(game: Arc<Game>, socket: UdpSocket) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP port-unreachable from an earlier reply surfaces here on some systems;
                // it concerns one client, not the socket.
                tracing::debug!(gameserver = %game.name(), %error, "udp receive failed");
                continue;
            }
        };
        let input = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let reply = game.handle(&input).await;
        if let Err(error) = socket.send_to(reply.text.as_bytes(), peer).await {
            tracing::debug!(gameserver = %game.name(), %peer, %error, "udp reply failed");
        }
        game.after_reply(&reply).await;
    }
}

/// Accepts TCP clients on `listener`; each line a client sends gets one reply line.
pub async fn serve_tcp(game: Arc<Game>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_tcp_client(game.clone(), stream, peer));
            }
            Err(error) => {
                tracing::warn!(gameserver = %game.name(), %error, "tcp accept failed");
                // Out of file descriptors is the usual cause: give the system a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_tcp_client(game: Arc<Game>, stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(gameserver = %game.name(), %peer, "tcp client connected");
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let reply = game.handle(&line).await;
                let sent = writer.write_all(reply.text.as_bytes()).await;
                game.after_reply(&reply).await;
                if sent.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(gameserver = %game.name(), %peer, %error, "tcp read failed");
                break;
            }
        }
    }
    tracing::debug!(gameserver = %game.name(), %peer, "tcp client left");
}
