//! Handing the sandbox's SDK listeners to the runtime: two file descriptors in one `SCM_RIGHTS`
//! message over the Unix socket that is the sandbox's stdin.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::RecvFlags;

use crate::local::fd_passing;

/// The tag byte sent with the listeners.
const TAG: u8 = b'L';

/// Sends the gRPC and REST listeners (in that order) over `socket`.
pub fn send_listeners(socket: impl AsFd, grpc: &TcpListener, http: &TcpListener) -> io::Result<()> {
    fd_passing::send(socket, TAG, &[grpc.as_fd(), http.as_fd()])
}

/// Receives the two listeners [`send_listeners`] sent, waiting until `socket` is readable.
pub async fn receive_listeners(socket: &tokio::net::UnixStream) -> io::Result<(OwnedFd, OwnedFd)> {
    loop {
        socket.readable().await?;
        match socket
            .try_io(tokio::io::Interest::READABLE, || fd_passing::receive::<2>(socket, TAG, RecvFlags::DONTWAIT))
        {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
            Ok(Some([grpc, http])) => return Ok((grpc, http)),
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the sandbox exited before handing over its SDK ports",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn listeners_cross_a_unix_socket_and_still_accept() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let grpc = TcpListener::bind("127.0.0.1:0").expect("bind");
        let http = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ports = (grpc.local_addr().expect("addr"), http.local_addr().expect("addr"));
        send_listeners(&theirs, &grpc, &http).expect("send");
        drop((grpc, http));
        ours.set_nonblocking(true).expect("nonblocking");
        let ours = tokio::net::UnixStream::from_std(ours).expect("tokio");
        let (grpc, http) = receive_listeners(&ours).await.expect("receive");
        let (grpc, http) = (TcpListener::from(grpc), TcpListener::from(http));
        assert_eq!((grpc.local_addr().expect("addr"), http.local_addr().expect("addr")), ports);
        let mut client = TcpStream::connect(ports.1).expect("connect");
        client.write_all(b"hi").expect("write");
        let (mut accepted, _) = http.accept().expect("accept on the received listener");
        let mut got = [0u8; 2];
        accepted.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hi");
    }

    #[tokio::test]
    async fn a_sandbox_that_dies_first_is_an_error_not_a_hang() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        drop(theirs);
        ours.set_nonblocking(true).expect("nonblocking");
        let ours = tokio::net::UnixStream::from_std(ours).expect("tokio");
        let error = receive_listeners(&ours).await.expect_err("closed");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
