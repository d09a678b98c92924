//! What the model says changed: [`Change`]s, each of a [`Holder`] (a process's fd), of a kind,
//! and how it came to be ([`Via`]).

use fdid_ebpf::watch::via as kernel_via;

use crate::tree::OpenFileId;

/// How a holder came to hold a description, or stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// A new description: open, socket, accept, pipe…
    Open,
    Dup,
    ScmRights,
    PidfdGetfd,
    Fork,
    CloneFiles,
    /// Kept across exec (no `O_CLOEXEC`), or closed by it.
    Exec,
    Close,
    CloseRange,
    Exit,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Dup => "dup",
            Self::ScmRights => "scm_rights",
            Self::PidfdGetfd => "pidfd_getfd",
            Self::Fork => "fork",
            Self::CloneFiles => "clone_files",
            Self::Exec => "exec",
            Self::Close => "close",
            Self::CloseRange => "close_range",
            Self::Exit => "exit",
        }
    }

    pub(super) fn of_install(via: u8) -> Self {
        match via {
            kernel_via::DUP => Self::Dup,
            kernel_via::SCM_RIGHTS => Self::ScmRights,
            kernel_via::PIDFD_GETFD => Self::PidfdGetfd,
            _ => Self::Open,
        }
    }
}

/// A process's fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    pub pid: u32,
    pub fd: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A description appeared, held by this holder alone.
    New,
    /// A description gained this holder.
    Share,
    /// This holder kept its fd across an exec (no `O_CLOEXEC`): the new program holds it.
    Kept,
    /// This holder no longer holds the description.
    Gone,
    /// The description's last reference went.
    Released,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Share => "share",
            Self::Kept => "kept",
            Self::Gone => "gone",
            Self::Released => "released",
        }
    }
}

/// One change to the fd tables in scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub time_ns: u64,
    pub kind: ChangeKind,
    pub via: Via,
    /// The holder (for `Released`, the last one known, if any).
    pub holder: Option<Holder>,
    pub id: OpenFileId,
    /// For a share: where it came from, when known.
    pub from: Option<Holder>,
}
