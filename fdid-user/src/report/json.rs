//! `--json`: one JSON object, streamed through the writer as it is produced (no second copy in memory).
//!
//! ```text
//! {"fds":[{"pid","tid","fd","id","genid","subid","dev":"MAJ:MIN","ino","pos","flags","mode","type",
//!          "path","comm","in_scope","unconfirmed"}...],
//!  "files":[{"id","refs","hidden_refs","confirmed","holders":[{"pid","fd"}...],"same_inode":[id...],
//!            "socket":{"family","type","protocol","state","local","remote","path","netns"}|null,
//!            "endpoints":[id...]}...],
//!  "shared_tables":[{"pids":[...]}...],
//!  "summary":{...}}
//! ```
//! `id` is the 64-bit open file description id as an unsigned integer (genid << 32 | subid).

use std::io::{self, Write};

use super::{Names, file_type};
use crate::survey::Survey;

/// Writes `s` as a JSON string literal.
pub fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        if escape.is_some() || (c as u32) < 0x20 {
            out.write_all(&s.as_bytes()[start..i])?;
            match escape {
                Some(escaped) => out.write_all(escaped.as_bytes())?,
                None => write!(out, "\\u{:04x}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
    }
    out.write_all(&s.as_bytes()[start..])?;
    out.write_all(b"\"")
}

fn write_ids(out: &mut impl Write, ids: &[crate::tree::OpenFileId]) -> io::Result<()> {
    for (k, id) in ids.iter().enumerate() {
        write!(out, "{}{}", if k > 0 { "," } else { "" }, id.0)?;
    }
    Ok(())
}

/// `{"family","type","protocol","state","local","remote","path","netns"}`; addresses as
/// `ADDR:PORT` (`[ADDR]:PORT` for IPv6), null when the socket has none.
fn write_socket(out: &mut impl Write, socket: &crate::socket::Socket) -> io::Result<()> {
    out.write_all(b"{\"family\":")?;
    write_str(out, &socket.family_name())?;
    out.write_all(b",\"type\":")?;
    write_str(out, &socket.type_name())?;
    out.write_all(b",\"protocol\":")?;
    write_str(out, &socket.protocol_name())?;
    out.write_all(b",\"state\":")?;
    write_str(out, socket.state_name())?;
    for (name, address) in [("local", socket.local), ("remote", socket.remote)] {
        write!(out, ",\"{name}\":")?;
        match address {
            Some(address) => write_str(out, &address.to_string())?,
            None => out.write_all(b"null")?,
        }
    }
    out.write_all(b",\"path\":")?;
    match &socket.path {
        Some(path) => write_str(out, path)?,
        None => out.write_all(b"null")?,
    }
    write!(out, ",\"netns\":{}}}", socket.netns)
}

/// The parts of an fd's JSON object that are the same for every holder of one description, built once
/// per description: `"id":…,"genid":…,"subid":…,"dev":"…","ino":…,"pos":…,"flags":…,"mode":…,
/// "type":"…","path":"…",` for the (pos, flags) of its first holder. An fd whose pos or flags differ
/// (an offset that moved during the walk) gets them written on its own.
struct DescriptionPart {
    pos: i64,
    flags: u32,
    /// Up to `"pos":`.
    head: Vec<u8>,
    /// From `"pos":` to `"mode":` (exclusive): `"pos":…,"flags":…,`.
    pos_flags: Vec<u8>,
    /// From `"mode":`.
    tail: Vec<u8>,
}

fn description_part(
    survey: &Survey,
    names: &mut Names,
    index: usize,
) -> io::Result<DescriptionPart> {
    let file = &survey.files[index];
    let r = survey.record(file.holders[0]);
    let mut head = Vec::with_capacity(96);
    write!(
        head,
        "\"id\":{},\"genid\":{},\"subid\":{},\"dev\":\"{}\",\"ino\":{},",
        file.id.0,
        file.id.genid(),
        file.id.subid(),
        crate::dev::display(r.dev),
        r.ino
    )?;
    let mut pos_flags = Vec::with_capacity(40);
    write_pos_flags(&mut pos_flags, r.pos, r.flags)?;
    let mut tail = Vec::with_capacity(96);
    write!(
        tail,
        "\"mode\":{},\"type\":\"{}\",\"path\":",
        r.mode,
        file_type(r.mode)
    )?;
    write_str(&mut tail, &names.path(survey, file))?;
    tail.push(b',');
    Ok(DescriptionPart {
        pos: r.pos,
        flags: r.flags,
        head,
        pos_flags,
        tail,
    })
}

fn write_pos_flags(out: &mut impl Write, pos: i64, flags: u32) -> io::Result<()> {
    let mut numbers = itoa::Buffer::new();
    out.write_all(b"\"pos\":")?;
    out.write_all(numbers.format(pos).as_bytes())?;
    out.write_all(b",\"flags\":")?;
    out.write_all(numbers.format(flags).as_bytes())?;
    out.write_all(b",")
}

/// The parts of an fd's JSON object that are the same for every fd of one task, built once per task:
/// `{"pid":…,"tid":…,"fd":` and `"comm":"…","in_scope":…,`.
struct TaskPart {
    head: Vec<u8>,
    tail: Vec<u8>,
}

fn task_part(survey: &Survey, names: &mut Names, tgid: u32, tid: u32) -> io::Result<TaskPart> {
    let mut head = Vec::with_capacity(40);
    write!(head, "{{\"pid\":{tgid},\"tid\":{tid},\"fd\":")?;
    let mut tail = b"\"comm\":".to_vec();
    write_str(&mut tail, names.comm(tgid))?;
    write!(tail, ",\"in_scope\":{},", survey.in_scope(tgid))?;
    Ok(TaskPart { head, tail })
}

/// Everything the fds array needs besides the records, built before formatting starts (the /proc
/// lookups for paths and names happen here, once each), so that formatting can run on two threads.
struct Parts {
    descriptions: Vec<DescriptionPart>,
    tasks: rustc_hash::FxHashMap<(u32, u32), TaskPart>,
}

impl Parts {
    fn build(survey: &Survey, names: &mut Names) -> io::Result<Self> {
        let descriptions = (0..survey.files.len())
            .map(|i| description_part(survey, names, i))
            .collect::<io::Result<_>>()?;
        let mut tasks = rustc_hash::FxHashMap::default();
        let mut previous = None;
        for index in 0..survey.len() {
            let r = survey.record(index);
            if previous != Some((r.tgid, r.tid)) {
                previous = Some((r.tgid, r.tid));
                if let std::collections::hash_map::Entry::Vacant(entry) =
                    tasks.entry((r.tgid, r.tid))
                {
                    entry.insert(task_part(survey, names, r.tgid, r.tid)?);
                }
            }
        }
        Ok(Self {
            descriptions,
            tasks,
        })
    }
}

/// Writes the fd objects `range` (each after a comma, but for the very first fd).
fn write_fds(
    out: &mut impl Write,
    survey: &Survey,
    parts: &Parts,
    range: std::ops::Range<usize>,
) -> io::Result<()> {
    let mut numbers = itoa::Buffer::new();
    let mut task: Option<((u32, u32), &TaskPart)> = None;
    for index in range {
        let r = survey.record(index);
        if index > 0 {
            out.write_all(b",")?;
        }
        let task_part = match task {
            Some((key, part)) if key == (r.tgid, r.tid) => part,
            _ => {
                let part = &parts.tasks[&(r.tgid, r.tid)];
                task = Some(((r.tgid, r.tid), part));
                part
            }
        };
        out.write_all(&task_part.head)?;
        out.write_all(numbers.format(r.fd).as_bytes())?;
        out.write_all(b",")?;
        let file = survey.file_index_of(index);
        let description = &parts.descriptions[file];
        out.write_all(&description.head)?;
        if (r.pos, r.flags) == (description.pos, description.flags) {
            out.write_all(&description.pos_flags)?;
        } else {
            write_pos_flags(out, r.pos, r.flags)?;
        }
        out.write_all(&description.tail)?;
        out.write_all(&task_part.tail)?;
        out.write_all(if survey.files[file].unconfirmed {
            b"\"unconfirmed\":true}"
        } else {
            b"\"unconfirmed\":false}"
        })?;
    }
    Ok(())
}

/// Writes the whole survey as one JSON object.
///
/// The fds array (most of the output) is formatted in chunks on two threads: this one formats the even
/// chunks straight into `out`, a helper formats the odd ones into buffers handed over in order (at most
/// two waiting), so memory stays bounded whatever the survey's size.
pub fn write(out: &mut impl Write, survey: &Survey) -> io::Result<()> {
    const CHUNK: usize = 1 << 15;
    let started = std::time::Instant::now();
    let mut names = Names::default();
    let parts = Parts::build(survey, &mut names)?;
    log::debug!("JSON parts built in {:?}", started.elapsed());
    let mut numbers = itoa::Buffer::new();

    out.write_all(b"{\"fds\":[")?;
    let chunks = survey.len().div_ceil(CHUNK);
    let chunk = |k: usize| k * CHUNK..((k + 1) * CHUNK).min(survey.len());
    std::thread::scope(|scope| -> io::Result<()> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
        let parts = &parts;
        scope.spawn(move || {
            for k in (1..chunks).step_by(2) {
                let mut buffer = Vec::with_capacity(CHUNK * 256);
                let formatted = write_fds(&mut buffer, survey, parts, chunk(k)).map(|()| buffer);
                if sender.send(formatted).is_err() {
                    break;
                }
            }
        });
        for k in (0..chunks).step_by(2) {
            write_fds(out, survey, parts, chunk(k))?;
            if k + 1 < chunks {
                let formatted = receiver
                    .recv()
                    .map_err(|_| io::Error::other("JSON formatting thread stopped"))??;
                out.write_all(&formatted)?;
            }
        }
        Ok(())
    })?;
    log::debug!("JSON fds written after {:?}", started.elapsed());
    let files_started = std::time::Instant::now();
    out.write_all(b"],\"files\":[")?;
    for (n, file) in survey.files.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        write!(out, "{{\"id\":{},\"refs\":", file.id.0)?;
        match file.refs {
            Some(refs) => write!(out, "{refs}")?,
            None => out.write_all(b"null")?,
        }
        out.write_all(b",\"hidden_refs\":")?;
        match file.hidden_refs {
            Some(hidden) => write!(out, "{hidden}")?,
            None => out.write_all(b"null")?,
        }
        write!(out, ",\"confirmed\":{},\"holders\":[", file.confirmed)?;
        // Holders come process by process: `,{"pid":…,"fd":` is built once per process.
        let mut holder_head = Vec::with_capacity(32);
        let mut head_pid = None;
        for (k, &h) in file.holders.iter().enumerate() {
            let r = survey.record(h);
            if head_pid != Some(r.tgid) {
                head_pid = Some(r.tgid);
                holder_head.clear();
                write!(holder_head, ",{{\"pid\":{},\"fd\":", r.tgid)?;
            }
            out.write_all(if k > 0 {
                &holder_head
            } else {
                &holder_head[1..]
            })?;
            out.write_all(numbers.format(r.fd).as_bytes())?;
            out.write_all(b"}")?;
        }
        out.write_all(b"],\"same_inode\":[")?;
        write_ids(out, &survey.same_inode(file.id))?;
        out.write_all(b"],\"socket\":")?;
        match survey.socket(file) {
            Some(socket) => write_socket(out, &socket)?,
            None => out.write_all(b"null")?,
        }
        out.write_all(b",\"endpoints\":[")?;
        write_ids(out, &file.endpoints)?;
        out.write_all(b"]}")?;
    }
    out.write_all(b"],\"shared_tables\":[")?;
    for (n, table) in survey.shared_tables.iter().enumerate() {
        let pids: Vec<String> = table.pids.iter().map(u32::to_string).collect();
        write!(
            out,
            "{}{{\"pids\":[{}]}}",
            if n > 0 { "," } else { "" },
            pids.join(",")
        )?;
    }
    log::debug!("JSON files written in {:?}", files_started.elapsed());
    let stats = &survey.stats;
    write!(
        out,
        "],\"summary\":{{\"processes\":{},\"fds\":{},\"files\":{},\"shared_files\":{},\"kcmp_calls\":{},\"splits\":{},\"unconfirmed_fds\":{},\"source\":\"{}\",\"kernel_filtered\":{},\"whole_system\":{},\"collect_ms\":{:.3},\"elapsed_ms\":{:.3},\"plan\":",
        survey.processes(),
        survey.len(),
        survey.files.len(),
        survey.shared_files().count(),
        stats.verify.kcmp_calls,
        stats.verify.splits,
        stats.verify.unconfirmed_fds,
        stats.source,
        stats.kernel_filtered,
        stats.whole_system,
        stats.collect_time.as_secs_f64() * 1e3,
        stats.elapsed.as_secs_f64() * 1e3,
    )?;
    match &stats.plan {
        Some(plan) => write_str(out, plan)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(b"}}\n")
}

#[cfg(test)]
mod tests {
    use super::write_str;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quoted("plain"), "\"plain\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("new\nline\u{1}"), "\"new\\nline\\u0001\"");
        assert_eq!(quoted("/tmp/ünï"), "\"/tmp/ünï\"");
        assert_eq!(quoted("tab\tcr\r space"), "\"tab\\tcr\\r space\"");
        assert_eq!(quoted("\u{1f}\u{7f}"), "\"\\u001f\u{7f}\"");
    }
}
