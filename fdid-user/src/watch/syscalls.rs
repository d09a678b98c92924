//! Which syscalls change an fd table, by number on the architecture fdid is built for: the table
//! `fdid watch`'s two syscall programs look a syscall up in ([`WatchConfig::syscalls`]).
//!
//! [`WatchConfig::syscalls`]: fdid_ebpf::watch::WatchConfig::syscalls

use fdid_ebpf::watch::{SYSCALL_SLOTS, syscall};
use libc::c_long;

/// Syscalls that return a new fd of a new description, on every architecture.
const NEW_FD: &[c_long] = &[
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_open_by_handle_at,
    libc::SYS_socket,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_eventfd2,
    libc::SYS_epoll_create1,
    libc::SYS_timerfd_create,
    libc::SYS_signalfd4,
    libc::SYS_inotify_init1,
    libc::SYS_fanotify_init,
    libc::SYS_pidfd_open,
    libc::SYS_userfaultfd,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_mq_open,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fspick,
    libc::SYS_fsmount,
    libc::SYS_landlock_create_ruleset,
];

/// The older calls x86_64 keeps and arm64 never had.
#[cfg(target_arch = "x86_64")]
const NEW_FD_LEGACY: &[c_long] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_eventfd,
    libc::SYS_epoll_create,
    libc::SYS_signalfd,
    libc::SYS_inotify_init,
];
#[cfg(not(target_arch = "x86_64"))]
const NEW_FD_LEGACY: &[c_long] = &[];

#[cfg(target_arch = "x86_64")]
const DUP: &[c_long] = &[libc::SYS_dup, libc::SYS_dup2, libc::SYS_dup3];
#[cfg(not(target_arch = "x86_64"))]
const DUP: &[c_long] = &[libc::SYS_dup, libc::SYS_dup3];

#[cfg(target_arch = "x86_64")]
const PIPE: &[c_long] = &[libc::SYS_pipe, libc::SYS_pipe2];
#[cfg(not(target_arch = "x86_64"))]
const PIPE: &[c_long] = &[libc::SYS_pipe2];

/// Each group of syscalls with what the programs do at them.
const GROUPS: &[(&[c_long], u8)] = &[
    (NEW_FD, syscall::NEW_FD),
    (NEW_FD_LEGACY, syscall::NEW_FD),
    (DUP, syscall::DUP),
    (&[libc::SYS_fcntl], syscall::FCNTL),
    (&[libc::SYS_pidfd_getfd], syscall::PIDFD_GETFD),
    (PIPE, syscall::PIPE),
    (&[libc::SYS_socketpair], syscall::SOCKETPAIR),
    (&[libc::SYS_recvmsg], syscall::RECVMSG),
    (&[libc::SYS_recvmmsg], syscall::RECVMMSG),
    (&[libc::SYS_sendmsg], syscall::SENDMSG),
    (&[libc::SYS_sendmmsg], syscall::SENDMMSG),
    (&[libc::SYS_close], syscall::CLOSE),
    (&[libc::SYS_close_range], syscall::CLOSE_RANGE),
    (&[libc::SYS_bpf], syscall::BPF),
    (&[libc::SYS_seccomp], syscall::SECCOMP),
];

/// Every syscall with what the programs do at it; the others are `syscall::NONE`.
pub fn table() -> [u8; SYSCALL_SLOTS] {
    let mut table = [syscall::NONE; SYSCALL_SLOTS];
    for &(numbers, action) in GROUPS {
        for &nr in numbers {
            // Every number here is below SYSCALL_SLOTS (a unit test says so).
            if let Some(slot) = usize::try_from(nr).ok().and_then(|nr| table.get_mut(nr)) {
                *slot = action;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_fits_the_table_and_has_one_action() {
        let table = table();
        let listed: usize = GROUPS.iter().map(|(numbers, _)| numbers.len()).sum();
        let set = table.iter().filter(|&&a| a != syscall::NONE).count();
        assert_eq!(set, listed, "a number out of the table, or listed twice");
    }

    #[test]
    fn the_table_names_this_architectures_numbers() {
        let table = table();
        assert_eq!(table[libc::SYS_close as usize], syscall::CLOSE);
        assert_eq!(table[libc::SYS_openat as usize], syscall::NEW_FD);
        assert_eq!(table[libc::SYS_dup3 as usize], syscall::DUP);
        assert_eq!(table[libc::SYS_read as usize], syscall::NONE);
        assert_eq!(table[libc::SYS_ioctl as usize], syscall::NONE);
        assert_eq!(table[libc::SYS_bpf as usize], syscall::BPF);
        assert_eq!(table[libc::SYS_seccomp as usize], syscall::SECCOMP);
        assert_eq!(table[libc::SYS_recvmmsg as usize], syscall::RECVMMSG);
        assert_eq!(table[libc::SYS_sendmmsg as usize], syscall::SENDMMSG);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(table[libc::SYS_pipe as usize], syscall::PIPE);
    }
}
