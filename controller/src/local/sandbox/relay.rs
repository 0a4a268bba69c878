//! Inside the sandbox: the game process, and the relays from its host ports to its container
//! ports on the sandbox's loopback.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::process::Command;

use super::RelayedPort;
use super::namespace::{Entered, HostSocket};

/// A UDP client silent this long (both ways) loses its relay socket.
const UDP_IDLE: Duration = Duration::from_secs(120);

/// Distinct UDP clients relayed at once per port; datagrams from more are dropped.
const UDP_SESSIONS: usize = 4096;

/// Largest datagram relayed (the UDP maximum).
const DATAGRAM: usize = 65_536;

/// Starts the game with this process's environment, relays its ports until it exits, and
/// returns its exit code (128 + the signal when a signal ended it, as a shell reports it).
///
/// SIGTERM and SIGINT reach the game directly (it shares this process group); the sandbox
/// itself outlives them, so the game's last SDK calls and its exit code still get through.
pub async fn run_game(entered: Entered, program: &Path, args: &[String]) -> std::io::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};
    let _terminate = signal(SignalKind::terminate())?;
    let _interrupt = signal(SignalKind::interrupt())?;
    let Entered { host, sdk_grpc, sdk_http } = entered;
    // The runtime holds the SDK listeners now; this process need not.
    drop((sdk_grpc, sdk_http));
    let mut child =
        Command::new(program).args(args).stdin(std::process::Stdio::null()).kill_on_drop(true).spawn().map_err(
            |error| std::io::Error::new(error.kind(), format!("cannot start {}: {error}", program.display())),
        )?;
    for (port, socket) in host {
        match socket {
            HostSocket::Udp(socket) => {
                socket.set_nonblocking(true)?;
                tokio::spawn(relay_udp(UdpSocket::from_std(socket)?, port));
            }
            HostSocket::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                tokio::spawn(relay_tcp(TcpListener::from_std(listener)?, port));
            }
        }
    }
    let status = child.wait().await?;
    Ok(status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1))
}

fn inside(port: RelayedPort) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port.container))
}

async fn relay_tcp(listener: TcpListener, port: RelayedPort) {
    loop {
        let Ok((mut outside, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut game) = TcpStream::connect(inside(port)).await else { return };
            let _ = tokio::io::copy_bidirectional(&mut outside, &mut game).await;
        });
    }
}

/// One UDP client's relay socket, connected to the game's port, so the game sees one peer per
/// client and its replies go back to the right one.
struct Session {
    socket: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

async fn relay_udp(host: UdpSocket, port: RelayedPort) {
    let host = Arc::new(host);
    let epoch = Instant::now();
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buffer = vec![0u8; DATAGRAM];
    let mut warned = false;
    loop {
        let Ok((length, client)) = host.recv_from(&mut buffer).await else { continue };
        let now = millis_since(epoch);
        sessions.retain(|_, session| !session.task.is_finished());
        if !sessions.contains_key(&client) {
            if sessions.len() >= UDP_SESSIONS {
                if !warned {
                    tracing::warn!(%port, limit = UDP_SESSIONS, "too many UDP clients; dropping datagrams from new ones");
                    warned = true;
                }
                continue;
            }
            let Ok(session) = open_session(host.clone(), client, port, epoch).await else { continue };
            sessions.insert(client, session);
        }
        if let Some(session) = sessions.get(&client) {
            session.last.store(now, Ordering::Relaxed);
            // A game not listening yet refuses the datagram; the client will resend.
            let _ = session.socket.send(&buffer[..length]).await;
        }
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn open_session(
    host: Arc<UdpSocket>,
    client: SocketAddr,
    port: RelayedPort,
    epoch: Instant,
) -> std::io::Result<Session> {
    let socket = Arc::new(UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?);
    socket.connect(inside(port)).await?;
    let last = Arc::new(AtomicU64::new(millis_since(epoch)));
    let task = tokio::spawn({
        let (socket, last) = (socket.clone(), last.clone());
        async move {
            let mut buffer = vec![0u8; DATAGRAM];
            loop {
                let idle = Duration::from_millis(millis_since(epoch).saturating_sub(last.load(Ordering::Relaxed)));
                let Some(left) = UDP_IDLE.checked_sub(idle) else { return };
                // An error is the ICMP port unreachable of a game still starting: keep going.
                if let Ok(Ok(length)) = tokio::time::timeout(left, socket.recv(&mut buffer)).await {
                    last.store(millis_since(epoch), Ordering::Relaxed);
                    let _ = host.send_to(&buffer[..length], client).await;
                }
            }
        }
    });
    Ok(Session { socket, last, task })
}
