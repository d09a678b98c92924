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
mod tests {
    use super::{Format, write};
    use crate::testing::{PID, fd, survey};

    /// A parent's description (7) dup'ed to fd 4 and inherited by a child; the child's own (8);
    /// description 7 has one reference more than its holders (an fd in flight, say).
    fn example() -> crate::survey::Survey {
        let (parent, child) = (PID, PID + 1);
        survey(
            vec![
                fd(parent, 3, 7, 4),
                fd(parent, 4, 7, 4),
                fd(child, 3, 7, 4),
                fd(child, 5, 8, 1),
            ],
            &[parent],
        )
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        write(&mut out, &example(), format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_lists_holders_inside_and_outside_the_scope_and_hidden_references() {
        let table = written(Format::Table { all: false });
        assert!(
            table.contains(&format!("    held by ?({PID}):3 ?({PID}):4\n")),
            "{table}"
        );
        assert!(
            table.contains(&format!(
                "    also held outside the scope by ?({}):3\n",
                PID + 1
            )),
            "{table}"
        );
        assert!(table.contains("    1 hidden reference(s)"), "{table}");
        assert!(table.contains("refs 4"), "{table}");
        assert!(
            !table.contains(&format!("({}):5", PID + 1)),
            "not the scope's: {table}"
        );
        let summary = table.lines().last().unwrap();
        assert!(
            summary.starts_with("1 processes, 2 fds, 1 open file descriptions, 1 shared"),
            "{summary}"
        );
    }

    #[test]
    fn json_has_every_fd_and_description_with_consistent_ids() {
        let json: serde_json::Value = serde_json::from_str(&written(Format::Json)).unwrap();
        let fds = json["fds"].as_array().unwrap();
        assert_eq!(
            fds.len(),
            3,
            "the scope's fds and the outside holder of its description"
        );
        let id = &fds[0]["id"];
        assert!(fds.iter().all(|f| &f["id"] == id));
        let file = &json["files"].as_array().unwrap()[0];
        assert_eq!(&file["id"], id);
        assert_eq!(file["refs"], 4);
        assert_eq!(file["hidden_refs"], 1);
        assert_eq!(file["holders"].as_array().unwrap().len(), 3);
        assert_eq!(json["summary"]["source"], "bpf");
    }

    #[test]
    fn dot_joins_each_process_to_the_description_with_its_fds() {
        let dot = written(Format::Dot);
        let survey = example();
        let id = survey.files[0].id.0;
        assert!(
            dot.contains(&format!("p{PID} -> f{id} [label=\"3,4\"]")),
            "{dot}"
        );
        assert!(
            dot.contains(&format!("p{} -> f{id} [label=\"3\"]", PID + 1)),
            "{dot}"
        );
        assert!(
            dot.contains("style=dashed"),
            "the child is outside the scope: {dot}"
        );
    }
}
