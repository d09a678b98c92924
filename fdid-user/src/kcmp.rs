//! `kcmp(2)`: asks the kernel whether two processes' fds (or fd tables) are the same kernel object.

use std::io;

const KCMP_FILE: libc::c_int = 0;
const KCMP_FILES: libc::c_int = 2;

/// How the kernel orders two objects (kcmp's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelOrder {
    Same,
    /// The first object sorts before the second (a stable, obfuscated pointer order).
    Less,
    Greater,
    /// Different, with no order given.
    Different,
}

/// How the two fds' open file descriptions compare (`KCMP_FILE`).
///
/// Pids are in the caller's pid namespace. An error of kind `NotFound` (ESRCH/EBADF) means one side is
/// gone: the process exited or closed the fd.
pub fn compare_files(pid1: u32, fd1: u32, pid2: u32, fd2: u32) -> io::Result<KernelOrder> {
    kcmp(pid1, pid2, KCMP_FILE, fd1.into(), fd2.into())
}

/// Whether two fds refer to the same open file description.
pub fn same_file(pid1: u32, fd1: u32, pid2: u32, fd2: u32) -> io::Result<bool> {
    Ok(compare_files(pid1, fd1, pid2, fd2)? == KernelOrder::Same)
}

/// Whether two processes share one fd table (`KCMP_FILES`).
pub fn same_fd_table(pid1: u32, pid2: u32) -> io::Result<bool> {
    Ok(kcmp(pid1, pid2, KCMP_FILES, 0, 0)? == KernelOrder::Same)
}

fn kcmp(
    pid1: u32,
    pid2: u32,
    kind: libc::c_int,
    idx1: libc::c_ulong,
    idx2: libc::c_ulong,
) -> io::Result<KernelOrder> {
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
        0 => Ok(KernelOrder::Same),
        1 => Ok(KernelOrder::Less),
        2 => Ok(KernelOrder::Greater),
        3 => Ok(KernelOrder::Different),
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
