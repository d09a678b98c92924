//! `--dot`: a Graphviz graph of processes and the open file descriptions they share.
//!
//! - Process nodes are boxes (`comm` and pid; dashed outside the scope); description nodes are
//!   ellipses (what it is — a socket as `TCP LISTEN 127.0.0.1:8080`, anything else by type and path —
//!   and its id). An edge joins a process to a description it holds, labelled with its fd numbers.
//! - Each process is a cluster with the descriptions it alone holds; shared descriptions sit between
//!   the processes sharing them.
//! - Bold grey edges are the process tree (parent → child) among the processes drawn; dashed blue
//!   double-headed edges join the two ends of a pipe or a connection.
//! - Drawn: the scope's shared descriptions, those with another end, and those other ends — but not
//!   the standard streams (a description the scope holds only as fds 0–2, like a terminal), which
//!   every process shares with its parent.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{self, Write},
};

use super::{Names, file_type};
use crate::{proc, survey::Survey};

pub(super) fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn write(out: &mut impl Write, survey: &Survey) -> io::Result<()> {
    let mut names = Names::default();
    let mut drawn: BTreeSet<usize> = (0..survey.files.len())
        .filter(|&i| {
            let file = &survey.files[i];
            (file.holders.len() > 1 || !file.endpoints.is_empty())
                && file.holders.iter().any(|&h| {
                    let fd = survey.fd(h);
                    fd.in_scope && fd.record.fd > 2
                })
        })
        .collect();
    let ends: Vec<usize> = drawn
        .iter()
        .flat_map(|&i| survey.files[i].endpoints.iter())
        .filter_map(|&id| survey.file_index(id))
        .collect();
    drawn.extend(ends);

    // Processes (in scope or not), and for each description its holders' fds by process.
    let mut processes: BTreeMap<u32, bool> = BTreeMap::new();
    let mut holders: BTreeMap<usize, BTreeMap<u32, Vec<String>>> = BTreeMap::new();
    for &i in &drawn {
        for &h in &survey.files[i].holders {
            let fd = survey.fd(h);
            *processes.entry(fd.record.tgid).or_insert(false) |= fd.in_scope;
            holders
                .entry(i)
                .or_default()
                .entry(fd.record.tgid)
                .or_default()
                .push(fd.record.fd.to_string());
        }
    }

    writeln!(out, "digraph fdid {{")?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  node [fontname=\"monospace\", fontsize=10];")?;
    writeln!(
        out,
        "  edge [fontname=\"monospace\", fontsize=9, labeldistance=2.5, labelangle=20];"
    )?;
    let node = |out: &mut dyn Write, names: &mut Names, i: usize| -> io::Result<()> {
        let file = &survey.files[i];
        let what = match survey.socket(file) {
            Some(socket) => socket.to_string(),
            None => {
                let first = survey.record(file.holders[0]);
                format!("{} {}", file_type(first.mode), names.path(survey, file))
            }
        };
        writeln!(
            out,
            "    f{} [shape=ellipse, label=\"{}\\n{}\"];",
            file.id.0,
            label(&what),
            file.id
        )
    };
    // Each process's cluster: itself and the descriptions only it holds.
    for (&pid, &in_scope) in &processes {
        writeln!(out, "  subgraph cluster_p{pid} {{")?;
        writeln!(out, "    label=\"\"; style=rounded; color=lightgrey;")?;
        let style = if in_scope { "" } else { ", style=dashed" };
        writeln!(
            out,
            "    p{pid} [shape=box{style}, label=\"{}\\n{pid}\"];",
            label(names.comm(pid))
        )?;
        for (&i, by_pid) in &holders {
            if by_pid.len() == 1 && by_pid.contains_key(&pid) {
                node(out, &mut names, i)?;
            }
        }
        writeln!(out, "  }}")?;
    }
    for (&i, by_pid) in &holders {
        if by_pid.len() > 1 {
            node(out, &mut names, i)?;
        }
    }
    for (&i, by_pid) in &holders {
        for (pid, fds) in by_pid {
            writeln!(
                out,
                "  p{pid} -> f{} [taillabel=\"{}\"];",
                survey.files[i].id.0,
                fds.join(",")
            )?;
        }
    }
    let parents = proc::parents();
    for &pid in processes.keys() {
        if let Some(parent) = parents.get(&pid).filter(|p| processes.contains_key(p)) {
            writeln!(out, "  p{parent} -> p{pid} [style=bold, color=grey];")?;
        }
    }
    // Each pair of ends once, whichever end was reached first.
    let pairs: BTreeSet<(u64, u64)> = drawn
        .iter()
        .flat_map(|&i| {
            let id = survey.files[i].id.0;
            survey.files[i]
                .endpoints
                .iter()
                .map(move |other| (id.min(other.0), id.max(other.0)))
        })
        .collect();
    for (a, b) in pairs {
        writeln!(
            out,
            "  f{a} -> f{b} [dir=both, style=dashed, color=blue, constraint=false];"
        )?;
    }
    writeln!(out, "}}")
}
