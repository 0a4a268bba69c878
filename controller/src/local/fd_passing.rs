//! File descriptors passed over a Unix socket as one `SCM_RIGHTS` message, with a tag byte
//! saying what they are (a message must carry data). Shared by the network sandbox handing over
//! its SDK listeners and the launcher thread handing over a game's stdin and output pipes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
    recvmsg, sendmsg,
};

/// The most descriptors one message carries here.
const MAX_FDS: usize = 2;

/// Sends `fds` (at most two) with `tag` over `socket`.
pub(crate) fn send(socket: impl AsFd, tag: u8, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if fds.len() > MAX_FDS || !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(format!("no room for {} descriptors in the control message", fds.len())));
    }
    sendmsg(socket, &[IoSlice::new(&[tag])], &mut control, SendFlags::empty())?;
    Ok(())
}

/// Receives the `N` descriptors [`send`] sent with `tag`, close-on-exec; `None` when the peer
/// closed the socket first. `flags` may add `DONTWAIT` (a `WouldBlock` error then means "not
/// yet").
pub(crate) fn receive<const N: usize>(
    socket: impl AsFd,
    tag: u8,
    flags: RecvFlags,
) -> io::Result<Option<[OwnedFd; N]>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = recvmsg(socket, &mut [IoSliceMut::new(&mut byte)], &mut control, flags | RecvFlags::CMSG_CLOEXEC)?;
    if received.bytes == 0 {
        return Ok(None);
    }
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(N);
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if byte[0] != tag {
        return Err(io::Error::other(format!(
            "expected descriptors tagged {:?}, got {:?}",
            tag as char, byte[0] as char
        )));
    }
    let count = fds.len();
    fds.try_into().map(Some).map_err(|_| io::Error::other(format!("{count} descriptors arrived, not {N}")))
}
