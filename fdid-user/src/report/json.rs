//! `--json`: one JSON object, streamed through the writer as it is produced (no second copy in memory).
//!
//! ```text
//! {"fds":[{"pid","tid","fd","id","genid","subid","dev":"MAJ:MIN","ino","pos","flags","mode","type",
//!          "path","comm","in_scope","unconfirmed"}...],
//!  "files":[{"id","refs","hidden_refs","confirmed","holders":[{"pid","fd"}...],"same_inode":[id...]}...],
//!  "shared_tables":[{"pids":[...]}...],
//!  "summary":{...}}
//! ```
//! `id` is the 64-bit open file description id as an unsigned integer (genid << 32 | subid).

use std::io::{self, Write};

use super::{Names, dev_string, file_type};
use crate::{collect::Source, survey::Survey};

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

/// The parts of an fd's JSON object that are the same for every holder of one description: before
/// `pos` (`"id":…,"genid":…,"subid":…,"dev":"…","ino":…,`) and after `flags`
/// (`"mode":…,"type":"…","path":"…",`), built once per description.
struct DescriptionParts {
    head: Vec<u8>,
    tail: Vec<u8>,
}

fn description_parts(
    survey: &Survey,
    names: &mut Names,
    index: usize,
) -> io::Result<DescriptionParts> {
    let file = &survey.files[index];
    let r = survey.record(file.holders[0]);
    let mut head = Vec::with_capacity(96);
    write!(
        head,
        "\"id\":{},\"genid\":{},\"subid\":{},\"dev\":\"{}\",\"ino\":{},",
        file.id.0,
        file.id.genid(),
        file.id.subid(),
        dev_string(r.dev),
        r.ino
    )?;
    let mut tail = Vec::with_capacity(96);
    write!(
        tail,
        "\"mode\":{},\"type\":\"{}\",\"path\":",
        r.mode,
        file_type(r.mode)
    )?;
    write_str(&mut tail, &names.path(survey, file))?;
    tail.push(b',');
    Ok(DescriptionParts { head, tail })
}

/// Writes the whole survey as one JSON object.
pub fn write(out: &mut impl Write, survey: &Survey) -> io::Result<()> {
    let mut names = Names::default();
    let mut parts: Vec<Option<DescriptionParts>> = (0..survey.files.len()).map(|_| None).collect();
    // `"comm":"…","in_scope":…,` per process.
    let mut process_parts: std::collections::HashMap<u32, Vec<u8>> =
        std::collections::HashMap::new();
    let mut numbers = itoa::Buffer::new();

    out.write_all(b"{\"fds\":[")?;
    for index in 0..survey.len() {
        let r = survey.record(index);
        out.write_all(if index == 0 {
            b"{\"pid\":"
        } else {
            b",{\"pid\":"
        })?;
        out.write_all(numbers.format(r.tgid).as_bytes())?;
        out.write_all(b",\"tid\":")?;
        out.write_all(numbers.format(r.tid).as_bytes())?;
        out.write_all(b",\"fd\":")?;
        out.write_all(numbers.format(r.fd).as_bytes())?;
        out.write_all(b",")?;
        let file = survey.file_index_of(index);
        let description = match &mut parts[file] {
            Some(description) => description,
            slot => slot.insert(description_parts(survey, &mut names, file)?),
        };
        out.write_all(&description.head)?;
        out.write_all(b"\"pos\":")?;
        out.write_all(numbers.format(r.pos).as_bytes())?;
        out.write_all(b",\"flags\":")?;
        out.write_all(numbers.format(r.flags).as_bytes())?;
        out.write_all(b",")?;
        out.write_all(&description.tail)?;
        let process = match process_parts.entry(r.tgid) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let mut part = b"\"comm\":".to_vec();
                write_str(&mut part, names.comm(r.tgid))?;
                write!(part, ",\"in_scope\":{},", survey.in_scope(r.tgid))?;
                entry.insert(part)
            }
        };
        out.write_all(process)?;
        out.write_all(if survey.files[file].unconfirmed {
            b"\"unconfirmed\":true}"
        } else {
            b"\"unconfirmed\":false}"
        })?;
    }
    out.write_all(b"],\"files\":[")?;
    for (n, file) in survey.files.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        write!(
            out,
            "{{\"id\":{},\"refs\":{},\"hidden_refs\":",
            file.id.0, file.refs
        )?;
        match file.hidden_refs {
            Some(hidden) => write!(out, "{hidden}")?,
            None => out.write_all(b"null")?,
        }
        write!(out, ",\"confirmed\":{},\"holders\":[", file.confirmed)?;
        for (k, &h) in file.holders.iter().enumerate() {
            let r = survey.record(h);
            out.write_all(if k > 0 { b",{\"pid\":" } else { b"{\"pid\":" })?;
            out.write_all(numbers.format(r.tgid).as_bytes())?;
            out.write_all(b",\"fd\":")?;
            out.write_all(numbers.format(r.fd).as_bytes())?;
            out.write_all(b"}")?;
        }
        out.write_all(b"],\"same_inode\":[")?;
        for (k, id) in survey.same_inode(file.id).iter().enumerate() {
            write!(out, "{}{}", if k > 0 { "," } else { "" }, id.0)?;
        }
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
    let stats = &survey.stats;
    write!(
        out,
        "],\"summary\":{{\"processes\":{},\"fds\":{},\"files\":{},\"shared_files\":{},\"kcmp_calls\":{},\"splits\":{},\"unconfirmed_fds\":{},\"source\":\"{}\",\"kernel_filtered\":{},\"whole_system\":{},\"collect_ms\":{:.3},\"elapsed_ms\":{:.3}}}}}",
        survey.processes(),
        survey.len(),
        survey.files.len(),
        survey.shared_files().count(),
        stats.verify.kcmp_calls,
        stats.verify.splits,
        stats.verify.unconfirmed_fds,
        match stats.source {
            Source::Bpf => "bpf",
            Source::Procfs => "procfs",
        },
        stats.kernel_filtered,
        stats.whole_system,
        stats.collect_time.as_secs_f64() * 1e3,
        stats.elapsed.as_secs_f64() * 1e3,
    )?;
    out.write_all(b"\n")
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
    }
}
