//! Passing fds over unix sockets with SCM_RIGHTS, for the scenario and workload processes.

use std::{io, os::fd::RawFd};

/// Runs `io` on a message with a one-byte payload and room for one fd in its control data.
fn with_fd_message<R>(io: impl FnOnce(&mut libc::msghdr) -> R) -> R {
    let mut byte = *b"x";
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) };
    let mut control = vec![0u8; space as usize];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    // size_t in glibc, socklen_t in musl.
    message.msg_controllen = space as _;
    io(&mut message)
}

/// Sends `fd` over the unix socket `socket` with SCM_RIGHTS.
pub fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    with_fd_message(|message| {
        // SAFETY: the control buffer was sized with CMSG_SPACE for one fd, so the first header and its
        // data fit in it.
        let rc = unsafe {
            let header = libc::CMSG_FIRSTHDR(message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
            libc::CMSG_DATA(header).cast::<RawFd>().write_unaligned(fd);
            libc::sendmsg(socket, message, 0)
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// Receives one fd sent with SCM_RIGHTS.
pub fn receive_fd(socket: RawFd) -> io::Result<RawFd> {
    with_fd_message(|message| {
        // SAFETY: recvmsg fills the message's own buffers; the header is checked before its data is read.
        unsafe {
            if libc::recvmsg(socket, message, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let header = libc::CMSG_FIRSTHDR(message);
            if header.is_null() || (*header).cmsg_type != libc::SCM_RIGHTS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no fd in the message",
                ));
            }
            Ok(libc::CMSG_DATA(header).cast::<RawFd>().read_unaligned())
        }
    })
}
