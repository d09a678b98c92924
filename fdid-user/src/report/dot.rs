//! `--dot`: a Graphviz graph of processes and the open file descriptions they share.
//!
//! Process nodes are boxes (`comm` and pid), description nodes ellipses (type, path, id); an edge joins
//! a process to a description it holds, labelled with its fd numbers. Only shared descriptions appear.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use super::{Names, file_type};
use crate::survey::Survey;

pub(super) fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn write(out: &mut impl Write, survey: &Survey) -> io::Result<()> {
    let mut names = Names::default();
    writeln!(out, "digraph fdid {{")?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  node [fontname=\"monospace\", fontsize=10];")?;
    writeln!(out, "  edge [fontname=\"monospace\", fontsize=9];")?;
    let mut processes: BTreeMap<u32, bool> = BTreeMap::new();
    let mut edges = Vec::new();
    for file in survey.files_in_scope().filter(|f| f.holders.len() > 1) {
        let first = survey.fd(file.holders[0]).record;
        let path = names.path(survey, file);
        writeln!(
            out,
            "  f{} [shape=ellipse, label=\"{} {}\\n{}\"];",
            file.id.0,
            file_type(first.mode),
            label(&path),
            file.id
        )?;
        let mut fds_by_pid: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for &h in &file.holders {
            let fd = survey.fd(h);
            processes.entry(fd.record.tgid).or_insert(fd.in_scope);
            fds_by_pid
                .entry(fd.record.tgid)
                .or_default()
                .push(fd.record.fd.to_string());
        }
        for (pid, fds) in fds_by_pid {
            edges.push(format!(
                "  p{pid} -> f{} [label=\"{}\"];",
                file.id.0,
                fds.join(",")
            ));
        }
    }
    for (pid, in_scope) in processes {
        let style = if in_scope { "" } else { ", style=dashed" };
        writeln!(
            out,
            "  p{pid} [shape=box{style}, label=\"{}\\n{pid}\"];",
            label(names.comm(pid))
        )?;
    }
    for edge in edges {
        writeln!(out, "{edge}")?;
    }
    writeln!(out, "}}")
}
