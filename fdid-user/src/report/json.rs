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

/// Writes the whole survey as one JSON object.
pub fn write(out: &mut impl Write, survey: &Survey) -> io::Result<()> {
    let mut names = Names::default();
    // Paths are looked up once per description.
    let mut paths: Vec<Option<String>> = vec![None; survey.files.len()];
    let file_index: std::collections::HashMap<_, _> = survey
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id, i))
        .collect();

    out.write_all(b"{\"fds\":[")?;
    for (n, fd) in survey.fds.iter().enumerate() {
        let r = &fd.record;
        if n > 0 {
            out.write_all(b",")?;
        }
        write!(
            out,
            "{{\"pid\":{},\"tid\":{},\"fd\":{},\"id\":{},\"genid\":{},\"subid\":{},\"dev\":\"{}\",\"ino\":{},\"pos\":{},\"flags\":{},\"mode\":{},\"type\":\"{}\",\"path\":",
            r.tgid,
            r.tid,
            r.fd,
            fd.id.0,
            fd.id.genid(),
            fd.id.subid(),
            dev_string(r.dev),
            r.ino,
            r.pos,
            r.flags,
            r.mode,
            file_type(r.mode),
        )?;
        let slot = file_index[&fd.id];
        let path = paths[slot].get_or_insert_with(|| names.path(survey, &survey.files[slot]));
        write_str(out, path)?;
        out.write_all(b",\"comm\":")?;
        write_str(out, names.comm(r.tgid))?;
        write!(
            out,
            ",\"in_scope\":{},\"unconfirmed\":{}}}",
            fd.in_scope, fd.unconfirmed
        )?;
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
            let r = &survey.fds[h].record;
            write!(
                out,
                "{}{{\"pid\":{},\"fd\":{}}}",
                if k > 0 { "," } else { "" },
                r.tgid,
                r.fd
            )?;
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
        survey.fds.len(),
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
