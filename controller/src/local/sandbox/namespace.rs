//! Entering the sandbox: host ports first, then a new user and network namespace with its
//! loopback up, then the SDK listeners inside it. Runs before any thread is started (a process
//! with threads cannot enter a new user namespace).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getgid, getuid};

use super::{RelayedPort, Transport};

/// The host-side sockets of the relayed ports and the in-namespace SDK listeners.
#[derive(Debug)]
pub struct Entered {
    /// Each relayed port with its host socket, bound in the host's namespace.
    pub host: Vec<(RelayedPort, HostSocket)>,
    /// The SDK's gRPC listener, on the sandbox's loopback.
    pub sdk_grpc: TcpListener,
    /// The SDK's REST listener, on the sandbox's loopback.
    pub sdk_http: TcpListener,
}

/// A host port's socket.
#[derive(Debug)]
pub enum HostSocket {
    /// For a UDP port.
    Udp(UdpSocket),
    /// For a TCP port.
    Tcp(TcpListener),
}

fn context(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |error| io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Binds the host ports (all interfaces, as a hostPort is), enters the namespaces and binds the
/// SDK ports inside. Must be called while the process has a single thread.
pub fn enter(ports: &[RelayedPort], sdk: (u16, u16)) -> io::Result<Entered> {
    let mut host = Vec::with_capacity(ports.len());
    for port in ports {
        let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port.host));
        let socket = match port.transport {
            Transport::Udp => UdpSocket::bind(address).map(HostSocket::Udp),
            Transport::Tcp => TcpListener::bind(address).map(HostSocket::Tcp),
        }
        .map_err(context(format_args!("host port {port}")))?;
        host.push((*port, socket));
    }
    isolate()?;
    let sdk_address = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let sdk_grpc = TcpListener::bind(sdk_address(sdk.0)).map_err(context(format_args!("SDK gRPC port {}", sdk.0)))?;
    let sdk_http = TcpListener::bind(sdk_address(sdk.1)).map_err(context(format_args!("SDK HTTP port {}", sdk.1)))?;
    Ok(Entered { host, sdk_grpc, sdk_http })
}

/// Whether this machine lets an unprivileged process have its own network namespace: enters
/// one (in this process, which must be single-threaded and is expected to exit right after).
pub fn probe() -> io::Result<()> {
    isolate()
}

/// A new user namespace (only our uid and gid mapped, to themselves) and network namespace,
/// with the loopback interface up.
fn isolate() -> io::Result<()> {
    let (uid, gid) = (getuid(), getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|errno| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cannot create a user and network namespace ({errno}); this kernel or its policy \
                 (kernel.unprivileged_userns_clone, user.max_user_namespaces, an AppArmor or SELinux \
                 rule) does not allow unprivileged ones"
            ),
        )
    })?;
    // An unprivileged process must give up setgroups before it may write its gid map.
    std::fs::write("/proc/self/setgroups", "deny").map_err(context("/proc/self/setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")).map_err(context("/proc/self/uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")).map_err(context("/proc/self/gid_map"))?;
    loopback_up().map_err(context("cannot bring the sandbox's loopback interface up"))
}

// rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if.h).
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 2;
const IFF_UP: u32 = 0x1;
const NLMSG_HEADER: usize = 16;

/// `ip link set lo up`, as one rtnetlink request: an `RTM_NEWLINK` whose `ifinfomsg` changes
/// only the `IFF_UP` flag of the loopback's index. The kernel acknowledges with an error code.
fn loopback_up() -> io::Result<()> {
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netdevice, recv, send, socket};
    let netlink = socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    let index = netdevice::name_to_index(&netlink, "lo")?;
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()); // nlmsg_flags
    message.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    message.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    message.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, padding
    message.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    message.extend_from_slice(&index.to_ne_bytes()); // ifi_index
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    send(&netlink, &message, SendFlags::empty())?;
    let mut answer = [0u8; 512];
    let (length, _) = recv(&netlink, &mut answer[..], RecvFlags::empty())?;
    let answer = &answer[..length];
    let field =
        |at: usize, len: usize| answer.get(at..at + len).ok_or_else(|| io::Error::other("short netlink answer"));
    let kind = u16::from_ne_bytes(field(4, 2)?.try_into().map_err(io::Error::other)?);
    if kind != NLMSG_ERROR {
        return Err(io::Error::other(format!("unexpected netlink answer type {kind}")));
    }
    let code = i32::from_ne_bytes(field(NLMSG_HEADER, 4)?.try_into().map_err(io::Error::other)?);
    match code {
        0 => Ok(()),
        negative => Err(io::Error::from_raw_os_error(-negative)),
    }
}
