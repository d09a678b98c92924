//! fdid: for every file descriptor on this machine (or in chosen processes), which other fds refer to the
//! same open file description — the kernel's `struct file` — shared by fork, dup, SCM_RIGHTS,
//! pidfd_getfd or inheritance across exec.
//!
//! The pipeline, one module per stage:
//! 1. [`collect`]: one [`FdRecord`] per fd, from the BPF `iter/task_file` program ([`collect::bpf`]) or
//!    from procfs ([`collect::procfs`]);
//! 2. [`group`]: which records are one open file description;
//! 3. [`report`]: a table for people.
//!
//! Supporting modules: [`btf`] and [`offsets`] find kernel struct members in the running kernel's BTF,
//! [`record`] decodes the iterator's stream, [`kcmp`] asks the kernel directly, [`proc`] reads names and
//! paths for display.

pub mod btf;
pub mod collect;
pub mod group;
pub mod kcmp;
pub mod offsets;
pub mod proc;
pub mod record;
pub mod report;

pub use record::FdRecord;
