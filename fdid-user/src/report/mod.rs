//! Stage 4: reports of a [`Survey`] — a table for people, JSON for programs, DOT for pictures.

pub mod dot;
pub mod json;
pub mod table;

use std::{
    collections::HashMap,
    io::{self, Write},
};

use crate::{
    proc,
    survey::{OpenFile, Survey},
};

/// The output formats: adding one is a variant here and a module beside this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The table for people; `all`: every description, not only the shared ones.
    Table {
        all: bool,
    },
    Json,
    Dot,
}

/// Writes `survey` as `format`.
pub fn write(out: &mut impl Write, survey: &Survey, format: Format) -> io::Result<()> {
    match format {
        Format::Table { all } => table::write(out, survey, all),
        Format::Json => json::write(out, survey),
        Format::Dot => dot::write(out, survey),
    }
}

/// File type as lsof and lsfd name it, from `i_mode`.
pub fn file_type(mode: u16) -> &'static str {
    match u32::from(mode) & libc::S_IFMT {
        libc::S_IFREG => "REG",
        libc::S_IFDIR => "DIR",
        libc::S_IFCHR => "CHR",
        libc::S_IFBLK => "BLK",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "SOCK",
        libc::S_IFLNK => "LINK",
        // Anonymous inodes (eventfd, epoll, timerfd, …) have no type bits.
        0 => "ANON",
        _ => "?",
    }
}

/// The access mode of open flags, as `r`, `w` or `rw`.
pub fn access_mode(flags: u32) -> &'static str {
    match flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "r",
        libc::O_WRONLY => "w",
        _ => "rw",
    }
}

/// Names for display, looked up once per process and once per description.
#[derive(Default)]
pub struct Names {
    comms: HashMap<u32, String>,
}

impl Names {
    pub fn comm(&mut self, pid: u32) -> &str {
        self.comms.entry(pid).or_insert_with(|| proc::comm(pid))
    }

    /// What the description is (`readlink` of its first holder still open), for display only.
    pub fn path(&mut self, survey: &Survey, file: &OpenFile) -> String {
        file.holders
            .iter()
            .find_map(|&h| {
                let r = survey.record(h);
                proc::fd_path(r.tid, r.fd)
            })
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| "?".to_owned())
    }
}

#[cfg(test)]
mod tests;
