//! `fdid who TARGET…`: every open file description of a target — a file or a unix socket's path, a
//! TCP or UDP port, a pipe, a socket, an inode, one process's fd — with its holders, hidden
//! references, the other ends and their holders, and which fds to close to release it.

use std::{
    io::{self, Write},
    os::unix::fs::MetadataExt as _,
    path::PathBuf,
    str::FromStr,
};

use crate::{
    report::{Names, table::holder_label},
    survey::{OpenFile, Survey},
};

/// What `fdid who` is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhoTarget {
    /// A file (by its device and inode) or, for a unix socket's path, the sockets bound to it.
    Path(PathBuf),
    /// TCP sockets whose local port this is (IPv4 and IPv6, any local address).
    Tcp(u16),
    /// UDP sockets whose local port this is.
    Udp(u16),
    /// `pipe:[INO]`.
    Pipe(u64),
    /// `socket:[INO]`.
    Socket(u64),
    /// `MAJOR:MINOR:INO`.
    Inode { major: u32, minor: u32, ino: u64 },
    /// `PID:FD`.
    Fd { pid: u32, fd: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum WhoError {
    #[error(
        "`{0}` is not a target (a path, tcp:PORT, udp:PORT, pipe:[INO], socket:[INO], MAJOR:MINOR:INO or PID:FD)"
    )]
    BadTarget(String),
    #[error("{path}")]
    Stat {
        path: String,
        #[source]
        error: io::Error,
    },
}

impl FromStr for WhoTarget {
    type Err = WhoError;

    fn from_str(text: &str) -> Result<Self, WhoError> {
        let bad = || WhoError::BadTarget(text.to_owned());
        let bracketed = |rest: &str| -> Result<u64, WhoError> {
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(rest);
            inner.parse().map_err(|_| bad())
        };
        let port = |rest: &str| -> Result<u16, WhoError> {
            rest.parse().ok().filter(|&p| p != 0).ok_or_else(bad)
        };
        if let Some(rest) = text.strip_prefix("tcp:") {
            return Ok(Self::Tcp(port(rest)?));
        }
        if let Some(rest) = text.strip_prefix("udp:") {
            return Ok(Self::Udp(port(rest)?));
        }
        if let Some(rest) = text.strip_prefix("pipe:") {
            return Ok(Self::Pipe(bracketed(rest)?));
        }
        if let Some(rest) = text.strip_prefix("socket:") {
            return Ok(Self::Socket(bracketed(rest)?));
        }
        let numbers: Option<Vec<u64>> = text.split(':').map(|n| n.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[pid, fd]) => Ok(Self::Fd {
                pid: u32::try_from(pid).map_err(|_| bad())?,
                fd: u32::try_from(fd).map_err(|_| bad())?,
            }),
            Some(&[major, minor, ino]) => Ok(Self::Inode {
                major: u32::try_from(major).map_err(|_| bad())?,
                minor: u32::try_from(minor).map_err(|_| bad())?,
                ino,
            }),
            Some(_) => Err(bad()),
            None if text.is_empty() || text.contains(':') && !text.contains('/') => Err(bad()),
            None => Ok(Self::Path(PathBuf::from(text))),
        }
    }
}

/// A target resolved against the file system (a path's device and inode, whether it is a socket's).
#[derive(Clone, Debug)]
pub struct Resolved {
    pub target: WhoTarget,
    /// The text as given.
    pub text: String,
    /// For a path, what it is on the file system.
    path: Option<PathTarget>,
}

/// What a path target matches.
#[derive(Clone, Debug)]
enum PathTarget {
    /// An existing file: its (kernel-encoded dev, ino), and its absolute path when it is a unix
    /// socket's (the sockets bound to it).
    Inode((u32, u64), Option<String>),
    /// A path that no longer exists: descriptions of a deleted file by that name, which the kernel
    /// names `PATH (deleted)`.
    Deleted(String),
}

impl Resolved {
    pub fn new(text: &str) -> Result<Self, WhoError> {
        let target: WhoTarget = text.parse()?;
        let path = match &target {
            WhoTarget::Path(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                match std::fs::metadata(path) {
                    Ok(meta) => {
                        let is_socket = meta.mode() & libc::S_IFMT == libc::S_IFSOCK;
                        let bound = is_socket.then(|| absolute.display().to_string());
                        let inode = (crate::dev::from_user(meta.dev()), meta.ino());
                        Some(PathTarget::Inode(inode, bound))
                    }
                    // Deleted, or never there: what is still held under that name.
                    Err(error)
                        if error.kind() == io::ErrorKind::NotFound && absolute.is_absolute() =>
                    {
                        Some(PathTarget::Deleted(format!(
                            "{} (deleted)",
                            absolute.display()
                        )))
                    }
                    Err(error) => {
                        return Err(WhoError::Stat {
                            path: path.display().to_string(),
                            error,
                        });
                    }
                }
            }
            _ => None,
        };
        Ok(Self {
            target,
            text: text.to_owned(),
            path,
        })
    }

    /// The descriptions of `survey` (indices into [`Survey::files`], in order) that are this target.
    pub fn matching(&self, survey: &Survey) -> Vec<usize> {
        (0..survey.files.len())
            .filter(|&i| self.is(survey, &survey.files[i]))
            .collect()
    }

    fn is(&self, survey: &Survey, file: &OpenFile) -> bool {
        let r = survey.record(file.holders[0]);
        let kind = u32::from(r.mode) & libc::S_IFMT;
        let inet_port = |protocol: i32, port: u16| {
            survey.socket(file).is_some_and(|s| {
                i32::from(s.protocol) == protocol && s.local.is_some_and(|l| l.port() == port)
            })
        };
        match &self.target {
            WhoTarget::Path(_) => match &self.path {
                Some(PathTarget::Inode(inode, bound)) => {
                    (r.dev, r.ino) == *inode
                        || bound.as_ref().is_some_and(|bound| {
                            survey.socket(file).is_some_and(|s| {
                                !s.path_is_peers && s.path.as_deref() == Some(bound.as_str())
                            })
                        })
                }
                // Only files without a name are candidates; their name is read from one holder.
                Some(PathTarget::Deleted(name)) => {
                    matches!(kind, libc::S_IFREG | libc::S_IFDIR | libc::S_IFIFO)
                        && crate::proc::fd_path(r.tid, r.fd)
                            .is_some_and(|path| path.as_os_str() == name.as_str())
                }
                None => false,
            },
            WhoTarget::Tcp(port) => inet_port(libc::IPPROTO_TCP, *port),
            WhoTarget::Udp(port) => inet_port(libc::IPPROTO_UDP, *port),
            WhoTarget::Pipe(ino) => kind == libc::S_IFIFO && r.ino == *ino,
            WhoTarget::Socket(ino) => kind == libc::S_IFSOCK && r.ino == *ino,
            WhoTarget::Inode { major, minor, ino } => {
                r.ino == *ino
                    && fdid_ebpf::kernel_dev_major(r.dev) == *major
                    && fdid_ebpf::kernel_dev_minor(r.dev) == *minor
            }
            WhoTarget::Fd { pid, fd } => survey.id_of(*pid, *fd) == Some(file.id),
        }
    }
}

/// Every (pid, fd) holding one of the descriptions `files` (indices into [`Survey::files`]), in order.
pub fn holders(survey: &Survey, files: &[usize]) -> Vec<(u32, u32)> {
    files
        .iter()
        .flat_map(|&i| survey.files[i].holders.iter())
        .map(|&h| (survey.record(h).tgid, survey.record(h).fd))
        .collect()
}

/// What a target's descriptions are and who holds them, as a block of text per description.
pub fn write_table(
    out: &mut impl Write,
    survey: &Survey,
    target: &Resolved,
    files: &[usize],
) -> io::Result<()> {
    let mut names = Names::default();
    if files.is_empty() {
        return writeln!(out, "{}: held by no process", target.text);
    }
    for &index in files {
        let file = &survey.files[index];
        let what = describe(survey, &mut names, file);
        writeln!(out, "{}: {} {what}", target.text, file.id)?;
        let holders = labels(survey, &mut names, file);
        writeln!(out, "    held by {}", holders.join(" "))?;
        let hidden = file.hidden_refs.unwrap_or(0);
        if hidden > 0 {
            writeln!(
                out,
                "    and {hidden} reference(s) held by no fd (mmap, SCM_RIGHTS in flight, io_uring…)"
            )?;
        }
        for &id in &file.endpoints {
            let Some(other) = survey.file(id) else {
                continue;
            };
            let what = describe(survey, &mut names, other);
            let holders = labels(survey, &mut names, other);
            writeln!(
                out,
                "    other end {id} {what}, held by {}",
                holders.join(" ")
            )?;
        }
        let fds: Vec<String> = file
            .holders
            .iter()
            .map(|&h| {
                let r = survey.record(h);
                format!("fd {} of {}", r.fd, r.tgid)
            })
            .collect();
        let but = if hidden > 0 {
            " (once the references held by no fd are gone)"
        } else {
            ""
        };
        writeln!(out, "    closing {} frees {what}{but}", join_and(&fds))?;
    }
    Ok(())
}

fn describe(survey: &Survey, names: &mut Names, file: &OpenFile) -> String {
    match survey.socket(file) {
        Some(socket) => socket.to_string(),
        None => {
            let r = survey.record(file.holders[0]);
            format!(
                "{} {}",
                crate::report::file_type(r.mode),
                names.path(survey, file)
            )
        }
    }
}

fn labels(survey: &Survey, names: &mut Names, file: &OpenFile) -> Vec<String> {
    file.holders
        .iter()
        .map(|&h| {
            let r = survey.record(h);
            holder_label(names, r.tgid, r.tid, r.fd)
        })
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests;
