//! Passing fds over unix sockets with SCM_RIGHTS, for the scenario and workload processes: one fd
//! a message, one message a call (sendmsg, recvmsg) or many in one call (sendmmsg, recvmmsg).

use std::{io, os::fd::RawFd};

/// Runs `io` on `count` messages, each with a one-byte payload and room for one fd in its control
/// data.
fn with_fd_messages<R>(count: usize, io: impl FnOnce(&mut [libc::mmsghdr]) -> R) -> R {
    let mut bytes = vec![*b"x"; count];
    let mut iovs: Vec<libc::iovec> = bytes
        .iter_mut()
        .map(|byte| libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        })
        .collect();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space * count];
    let mut messages: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(control.chunks_mut(space))
        .map(|(iov, control)| {
            // SAFETY: mmsghdr is plain data; all zeroes is a valid value.
            let mut message: libc::mmsghdr = unsafe { std::mem::zeroed() };
            message.msg_hdr.msg_iov = iov;
            message.msg_hdr.msg_iovlen = 1;
            message.msg_hdr.msg_control = control.as_mut_ptr().cast();
            // size_t in glibc, socklen_t in musl.
            message.msg_hdr.msg_controllen = space as _;
            message
        })
        .collect();
    io(&mut messages)
}

/// Puts `fd` in `message`'s control data, as an SCM_RIGHTS message.
fn put_fd(message: &mut libc::msghdr, fd: RawFd) {
    // SAFETY: the control buffer was sized with CMSG_SPACE for one fd, so the first header and its
    // data fit in it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        libc::CMSG_DATA(header).cast::<RawFd>().write_unaligned(fd);
    }
}

/// The fd a received message carried.
fn fd_in(message: &libc::msghdr) -> io::Result<RawFd> {
    // SAFETY: the kernel filled the message's own control buffer; the header is checked before its
    // data is read.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(message);
        if header.is_null() || (*header).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no fd in the message",
            ));
        }
        Ok(libc::CMSG_DATA(header).cast::<RawFd>().read_unaligned())
    }
}

/// `Ok(n)` for a call that returned `n ≥ 0`, the OS error otherwise (an int widens losslessly).
fn returned(rc: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// Sends `fd` over the unix socket `socket` with SCM_RIGHTS.
pub fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    with_fd_messages(1, |messages| {
        put_fd(&mut messages[0].msg_hdr, fd);
        // SAFETY: a message whose buffers live as long as the call.
        returned(unsafe { libc::sendmsg(socket, &messages[0].msg_hdr, 0) }).map(drop)
    })
}

/// Receives one fd sent with SCM_RIGHTS.
pub fn receive_fd(socket: RawFd) -> io::Result<RawFd> {
    with_fd_messages(1, |messages| {
        // SAFETY: recvmsg fills the message's own buffers.
        returned(unsafe { libc::recvmsg(socket, &mut messages[0].msg_hdr, 0) })?;
        fd_in(&messages[0].msg_hdr)
    })
}

/// Sends each of `fds` in a message of its own, all with one sendmmsg call, over the unix datagram
/// socket `socket`.
pub fn send_fds_at_once(socket: RawFd, fds: &[RawFd]) -> io::Result<()> {
    with_fd_messages(fds.len(), |messages| {
        for (message, &fd) in messages.iter_mut().zip(fds) {
            put_fd(&mut message.msg_hdr, fd);
        }
        // SAFETY: messages whose buffers live as long as the call.
        let sent = returned(unsafe {
            libc::sendmmsg(socket, messages.as_mut_ptr(), messages.len() as _, 0)
        } as libc::ssize_t)?;
        if sent == fds.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sendmmsg sent {sent} of {}",
                fds.len()
            )))
        }
    })
}

/// Receives `count` messages of one fd each with one recvmmsg call (which waits for them all).
pub fn receive_fds_at_once(socket: RawFd, count: usize) -> io::Result<Vec<RawFd>> {
    with_fd_messages(count, |messages| {
        // SAFETY: recvmmsg fills the messages' own buffers.
        let received = returned(unsafe {
            libc::recvmmsg(
                socket,
                messages.as_mut_ptr(),
                count as _,
                0,
                std::ptr::null_mut(),
            )
        } as libc::ssize_t)?;
        messages[..received]
            .iter()
            .map(|message| fd_in(&message.msg_hdr))
            .collect()
    })
}
