//! Host ports, as a CNI portmap plugin gives them: `nodeIP:hostPort` forwarded to
//! `podIP:containerPort`, over UDP (one upstream socket per client, so replies find their way
//! back) or TCP. Binding fails when the port is taken on that Node, as it would on a real host.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// The forwarders of one Pod; dropping it closes them.
#[derive(Default)]
pub struct HostPorts {
    tasks: JoinSet<()>,
}

impl HostPorts {
    /// Forwards `host` to `pod` for `protocol` (`TCP` or `UDP`).
    pub async fn forward(&mut self, protocol: &str, host: SocketAddr, pod: SocketAddr) -> std::io::Result<()> {
        match protocol {
            "UDP" => {
                let socket = Arc::new(UdpSocket::bind(host).await?);
                self.tasks.spawn(relay_udp(socket, pod));
            }
            _ => {
                let listener = TcpListener::bind(host).await?;
                self.tasks.spawn(relay_tcp(listener, pod));
            }
        }
        Ok(())
    }
}

async fn relay_udp(socket: Arc<UdpSocket>, pod: SocketAddr) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut replies = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else { return };
        let upstream = match upstreams.get(&client) {
            Some(upstream) => upstream.clone(),
            None => {
                let Ok(upstream) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                if upstream.connect(pod).await.is_err() {
                    continue;
                }
                let upstream = Arc::new(upstream);
                upstreams.insert(client, upstream.clone());
                let (back, from) = (socket.clone(), upstream.clone());
                replies.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = from.recv(&mut buf).await {
                        let _ = back.send_to(&buf[..n], client).await;
                    }
                });
                upstream
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn relay_tcp(listener: TcpListener, pod: SocketAddr) {
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(pod).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
