//! The default report: one block per shared open file description, then the summary line.

use std::io::{self, Write};

use super::{Names, access_mode, file_type};
use crate::survey::Survey;

/// Writes the table: every shared description, every one with hidden references, and with `all` the
/// rest too.
pub fn write(out: &mut impl Write, survey: &Survey, all: bool) -> io::Result<()> {
    let mut names = Names::default();
    for file in survey.files_in_scope() {
        if file.holders.len() < 2 && file.hidden_refs.unwrap_or(0) == 0 && !all {
            continue;
        }
        let first = survey.fd(file.holders[0]).record;
        // A socket reads as what it is (`TCP LISTEN 127.0.0.1:8080`), anything else as its path.
        let path = match survey.socket(file) {
            Some(socket) => socket.to_string(),
            None => names.path(survey, file),
        };
        write!(
            out,
            "{id}  {kind:<4} {path}  dev {dev} ino {ino}  {mode} flags 0{flags:o} pos {pos}",
            id = file.id,
            kind = file_type(first.mode),
            dev = crate::dev::display(first.dev),
            ino = first.ino,
            mode = access_mode(first.flags),
            flags = first.flags,
            pos = first.pos,
        )?;
        if let Some(refs) = file.refs {
            write!(out, "  refs {refs}")?;
        }
        if file.confirmed {
            write!(out, "  (kcmp-confirmed)")?;
        }
        writeln!(out)?;
        let mut inside = Vec::new();
        let mut outside = Vec::new();
        for &h in &file.holders {
            let fd = survey.fd(h);
            let label = holder_label(&mut names, fd.record.tgid, fd.record.tid, fd.record.fd);
            let label = if fd.unconfirmed {
                format!("{label}(unconfirmed)")
            } else {
                label
            };
            if fd.in_scope {
                inside.push(label)
            } else {
                outside.push(label)
            }
        }
        writeln!(out, "    held by {}", inside.join(" "))?;
        if !outside.is_empty() {
            writeln!(
                out,
                "    also held outside the scope by {}",
                outside.join(" ")
            )?;
        }
        if let Some(hidden) = file.hidden_refs.filter(|&n| n > 0) {
            writeln!(
                out,
                "    {hidden} hidden reference(s): held by no fd (mmap, SCM_RIGHTS in flight, io_uring…; approximate)"
            )?;
        }
        if !file.endpoints.is_empty() {
            let mut ends = Vec::new();
            for &id in &file.endpoints {
                let Some(other) = survey.file(id) else {
                    continue;
                };
                let holders: Vec<String> = other
                    .holders
                    .iter()
                    .map(|&h| {
                        let r = survey.record(h);
                        holder_label(&mut names, r.tgid, r.tid, r.fd)
                    })
                    .collect();
                ends.push(format!("{id} (held by {})", holders.join(" ")));
            }
            writeln!(out, "    other end: {}", ends.join(", "))?;
        }
        // Separate opens of the inode that are not its other end (those are listed above).
        let mut same_inode = survey.same_inode(file.id);
        same_inode.retain(|id| !file.endpoints.contains(id));
        if !same_inode.is_empty() {
            let ids: Vec<String> = same_inode.iter().map(|id| id.to_string()).collect();
            writeln!(
                out,
                "    same inode, opened separately as {}",
                ids.join(" ")
            )?;
        }
    }
    for table in &survey.shared_tables {
        let pids: Vec<String> = table
            .pids
            .iter()
            .map(|&pid| format!("{}({pid})", names.comm(pid)))
            .collect();
        writeln!(
            out,
            "shared fd table (CLONE_FILES): {} — fds listed once, under the first",
            pids.join(" ")
        )?;
    }
    writeln!(out, "{}", summary_line(survey))
}

/// `comm(pid):fd`, or `comm(pid/tid):fd` for a thread with its own fd table.
pub fn holder_label(names: &mut Names, pid: u32, tid: u32, fd: u32) -> String {
    if tid != pid && tid != 0 {
        format!("{}({pid}/{tid}):{fd}", names.comm(pid))
    } else {
        format!("{}({pid}):{fd}", names.comm(pid))
    }
}

/// The one-line summary.
pub fn summary_line(survey: &Survey) -> String {
    let stats = &survey.stats;
    let in_scope: Vec<_> = survey.files_in_scope().collect();
    let shared = in_scope.iter().filter(|f| f.holders.len() > 1).count();
    let fds = survey.fds_in_scope();
    let mut walk = Vec::new();
    if stats.kernel_filtered {
        walk.push("kernel pid filter");
    }
    if stats.whole_system {
        walk.push("whole system");
    }
    format!(
        "{processes} processes, {fds} fds, {files} open file descriptions, {shared} shared; \
         kcmp {calls} calls, {splits} splits, {unconfirmed} unconfirmed; \
         {source}{walk} {collect:.1} ms, total {total:.1} ms{plan}",
        processes = survey.processes_in_scope().len(),
        files = in_scope.len(),
        calls = stats.verify.kcmp_calls,
        splits = stats.verify.splits,
        unconfirmed = stats.verify.unconfirmed_fds,
        source = stats.source,
        walk = if walk.is_empty() {
            String::new()
        } else {
            format!(" ({})", walk.join(", "))
        },
        collect = stats.collect_time.as_secs_f64() * 1e3,
        total = stats.elapsed.as_secs_f64() * 1e3,
        plan = match &stats.plan {
            Some(reason) => format!("; {reason}"),
            None => String::new(),
        },
    )
}
