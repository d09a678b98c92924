//! `kcmp(2)`: asks the kernel whether two processes' fds (or fd tables) are the same kernel object.

use std::io;

const KCMP_FILE: libc::c_int = 0;
const KCMP_FILES: libc::c_int = 2;

/// Whether two fds refer to the same open file description (`KCMP_FILE`).
///
/// Pids are in the caller's pid namespace. An error of kind `NotFound` (ESRCH/EBADF) means one side is
/// gone: the process exited or closed the fd.
pub fn same_file(pid1: u32, fd1: u32, pid2: u32, fd2: u32) -> io::Result<bool> {
    kcmp(pid1, pid2, KCMP_FILE, fd1.into(), fd2.into())
}

/// Whether two processes share one fd table (`KCMP_FILES`).
pub fn same_fd_table(pid1: u32, pid2: u32) -> io::Result<bool> {
    kcmp(pid1, pid2, KCMP_FILES, 0, 0)
}

fn kcmp(
    pid1: u32,
    pid2: u32,
    kind: libc::c_int,
    idx1: libc::c_ulong,
    idx2: libc::c_ulong,
) -> io::Result<bool> {
    // SAFETY: kcmp takes only integers and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1 as libc::pid_t,
            pid2 as libc::pid_t,
            kind,
            idx1,
            idx2,
        )
    };
    match rc {
        0 => Ok(true),
        1..=3 => Ok(false),
        _ => {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::ESRCH | libc::EBADF) => {
                    Err(io::Error::new(io::ErrorKind::NotFound, error))
                }
                _ => Err(error),
            }
        }
    }
}
