//! Each format on surveys built from records: what a reader of the table, JSON or DOT relies on.

use std::os::fd::AsRawFd as _;

use super::{Format, Names, access_mode, file_type, write};
use crate::{
    record::FdRecord,
    survey::Survey,
    testing::{PID, fd, pipe_end, socket_fd, survey},
};

/// A parent's description (7) dup'ed to fd 4 and inherited by a child; the child's own (8);
/// description 7 has one reference more than its holders (an fd in flight, say).
fn example() -> Survey {
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
        dot.contains(&format!("p{PID} -> f{id} [taillabel=\"3,4\"]")),
        "{dot}"
    );
    assert!(
        dot.contains(&format!("p{} -> f{id} [taillabel=\"3\"]", PID + 1)),
        "{dot}"
    );
    assert!(
        dot.contains("style=dashed"),
        "the child is outside the scope: {dot}"
    );
}

fn written_of(survey: &Survey, format: Format) -> String {
    let mut out = Vec::new();
    write(&mut out, survey, format).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn file_types_and_access_modes_read_as_lsof_writes_them() {
    for (mode, name) in [
        (libc::S_IFREG | 0o644, "REG"),
        (libc::S_IFDIR | 0o755, "DIR"),
        (libc::S_IFCHR | 0o666, "CHR"),
        (libc::S_IFBLK | 0o660, "BLK"),
        (libc::S_IFIFO | 0o600, "FIFO"),
        (libc::S_IFSOCK | 0o777, "SOCK"),
        (libc::S_IFLNK | 0o777, "LINK"),
        (0o600, "ANON"),
    ] {
        assert_eq!(file_type(mode as u16), name, "{mode:o}");
    }
    for (flags, mode) in [
        (libc::O_RDONLY, "r"),
        (libc::O_WRONLY | libc::O_APPEND, "w"),
        (libc::O_RDWR | libc::O_NONBLOCK, "rw"),
    ] {
        assert_eq!(access_mode(flags as u32), mode, "{flags:o}");
    }
}

#[test]
fn a_description_is_named_by_a_holder_that_is_still_open() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let me = std::process::id();
    let gone = fd(PID, 3, 7, 2);
    let mut open = fd(me, file.as_raw_fd() as u32, 7, 2);
    open.files_hash = 1;
    let survey = survey(vec![gone, open], &[]);
    let mut names = Names::default();
    assert_eq!(names.path(&survey, &survey.files[0]), "/dev/null");
    let alone = crate::testing::survey(vec![fd(PID, 3, 8, 1)], &[]);
    assert_eq!(names.path(&alone, &alone.files[0]), "?");
}

/// In the scope (PID): 7 shared by fds 3 and 4, 8 alone, 9 alone with a hidden reference, 10 and 11 two
/// opens of one inode shared with a thread of PID+1 that has its own fd table.
fn assorted() -> Survey {
    let mut thread = fd(PID + 1, 5, 10, 2);
    thread.tid = PID + 2;
    let mut second_open = fd(PID, 8, 11, 1);
    second_open.ino = thread.ino;
    survey(
        vec![
            fd(PID, 3, 7, 2),
            fd(PID, 4, 7, 2),
            fd(PID, 5, 8, 1),
            fd(PID, 6, 9, 2),
            fd(PID, 7, 10, 2),
            second_open,
            thread,
        ],
        &[PID],
    )
}

#[test]
fn the_table_shows_shared_and_hidden_descriptions_and_everything_with_all() {
    let survey = assorted();
    let id = |fd: u32| survey.id_of(PID, fd).unwrap().to_string();
    let table = written_of(&survey, Format::Table { all: false });
    let headers: Vec<&str> = table.lines().filter(|l| !l.starts_with(' ')).collect();
    assert!(headers[0].starts_with(&id(3)), "{table}");
    assert!(headers[1].starts_with(&id(6)), "hidden references: {table}");
    assert!(headers[2].starts_with(&id(7)), "{table}");
    assert_eq!(
        headers.len(),
        4,
        "three descriptions and the summary: {table}"
    );
    assert_eq!(table.matches("hidden reference").count(), 1, "{table}");
    let all = written_of(&survey, Format::Table { all: true });
    assert!(all.lines().any(|l| l.starts_with(&id(5))), "{all}");
    assert!(all.lines().any(|l| l.starts_with(&id(8))), "{all}");
}

#[test]
fn the_table_names_separate_opens_threads_and_counts_shared_descriptions() {
    let survey = assorted();
    let id = |fd: u32| survey.id_of(PID, fd).unwrap();
    let table = written_of(&survey, Format::Table { all: true });
    let same = format!("    same inode, opened separately as {}\n", id(8));
    assert_eq!(table.matches(&same).count(), 1, "{table}");
    assert_eq!(table.matches("same inode").count(), 2, "both ways: {table}");
    assert!(
        table.contains(&format!(
            "outside the scope by ?({}/{}):5",
            PID + 1,
            PID + 2
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!("held by ?({PID}):3 ?({PID}):4\n")),
        "{table}"
    );
    let summary = table.lines().last().unwrap();
    assert!(
        summary.starts_with("1 processes, 6 fds, 5 open file descriptions, 2 shared;"),
        "{summary}"
    );
}

#[test]
fn json_gives_each_fd_its_own_process_and_offset() {
    let mut moved = fd(PID + 1, 3, 7, 2);
    moved.pos = 4096;
    moved.flags |= libc::O_NONBLOCK as u32;
    let survey = survey(vec![fd(PID, 3, 7, 2), moved, fd(PID + 1, 4, 8, 1)], &[]);
    let json: serde_json::Value = serde_json::from_str(&written_of(&survey, Format::Json)).unwrap();
    let fds = json["fds"].as_array().unwrap();
    let seen: Vec<(u64, u64, i64, u64)> = fds
        .iter()
        .map(|f| {
            (
                f["pid"].as_u64().unwrap(),
                f["fd"].as_u64().unwrap(),
                f["pos"].as_i64().unwrap(),
                f["flags"].as_u64().unwrap(),
            )
        })
        .collect();
    let nonblock = 2 | libc::O_NONBLOCK as u64;
    assert_eq!(
        seen,
        vec![
            (u64::from(PID), 3, 0, 2),
            (u64::from(PID + 1), 3, 4096, nonblock),
            (u64::from(PID + 1), 4, 0, 2)
        ]
    );
    assert_eq!(fds[0]["id"], fds[1]["id"]);
    assert_eq!(json["files"].as_array().unwrap().len(), 2);
    assert_eq!(json["summary"]["shared_files"], 1);
}

#[test]
fn json_of_many_fds_keeps_walk_order_across_formatting_chunks() {
    // 40,000 fds: two 32,768-fd chunks, formatted on two threads.
    let records: Vec<FdRecord> = (0..40_000u32)
        .map(|i| fd(PID + i / 1000, 3 + i % 1000, u64::from(i % 1000), 100))
        .collect();
    let survey = survey(records, &[]);
    let json: serde_json::Value = serde_json::from_str(&written_of(&survey, Format::Json)).unwrap();
    let fds = json["fds"].as_array().unwrap();
    assert_eq!(fds.len(), 40_000);
    for (i, f) in fds.iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            (f["pid"].as_u64().unwrap(), f["fd"].as_u64().unwrap()),
            (u64::from(PID) + i / 1000, 3 + i % 1000),
            "fd {i}"
        );
    }
    assert_eq!(json["files"].as_array().unwrap().len(), 1000);
}

#[test]
fn dot_draws_only_shared_descriptions_and_quotes_labels() {
    let survey = assorted();
    let dot = written_of(&survey, Format::Dot);
    let drawn = |fd: u32| dot.contains(&format!("f{} [", survey.id_of(PID, fd).unwrap().0));
    assert!(drawn(3) && drawn(7), "{dot}");
    assert!(!drawn(5) && !drawn(6) && !drawn(8), "not shared: {dot}");
    assert_eq!(
        super::dot::label("say \"hi\" \\o/"),
        "say \\\"hi\\\" \\\\o/"
    );
}

#[test]
fn dot_joins_a_pipes_two_ends_and_leaves_out_the_standard_streams() {
    let fifo = |pid, fd_number, hash, flags| pipe_end(pid, fd_number, hash, 1, flags);
    // PID reads a pipe PID+1 writes; both have the same terminal as fd 2 (description 9).
    let survey = survey(
        vec![
            fd(PID, 2, 9, 2),
            fifo(PID, 3, 5, libc::O_RDONLY),
            fd(PID + 1, 2, 9, 2),
            fifo(PID + 1, 4, 6, libc::O_WRONLY),
        ],
        &[PID],
    );
    let (reader, writer) = (
        survey.id_of(PID, 3).unwrap(),
        survey.id_of(PID + 1, 4).unwrap(),
    );
    let dot = written_of(&survey, Format::Dot);
    let (low, high) = (reader.min(writer), reader.max(writer));
    assert!(
        dot.contains(&format!("  f{} -> f{} [dir=both", low.0, high.0)),
        "{dot}"
    );
    assert!(
        dot.contains(&format!("subgraph cluster_p{PID} {{")),
        "{dot}"
    );
    let terminal = survey.id_of(PID, 2).unwrap();
    assert!(
        !dot.contains(&format!("f{}", terminal.0)),
        "fd 2 is left out: {dot}"
    );
    // Each end is drawn once, in the frame of the one process holding it.
    for (pid, id) in [(PID, reader), (PID + 1, writer)] {
        let node = format!("    f{} [shape=ellipse", id.0);
        assert_eq!(dot.matches(&node).count(), 1, "{dot}");
        let cluster = dot
            .split(&format!("subgraph cluster_p{pid} {{"))
            .nth(1)
            .unwrap();
        let cluster = cluster.split("\n  }").next().unwrap();
        assert!(cluster.contains(&node), "{id} in {pid}'s frame: {dot}");
    }
    assert!(
        dot.contains(&format!("    p{PID} [shape=box, label")),
        "in scope: {dot}"
    );
    assert!(
        dot.contains(&format!("    p{} [shape=box, style=dashed", PID + 1)),
        "outside: {dot}"
    );
}

#[test]
fn dot_draws_a_shared_description_once_between_its_holders() {
    let survey = survey(vec![fd(PID, 3, 7, 2), fd(PID + 1, 3, 7, 2)], &[PID]);
    let dot = written_of(&survey, Format::Dot);
    let node = format!("    f{} [shape=ellipse", survey.id_of(PID, 3).unwrap().0);
    assert_eq!(dot.matches(&node).count(), 1, "{dot}");
    let frames_end = dot.rfind("\n  }\n").unwrap();
    assert!(
        dot.find(&node).unwrap() > frames_end,
        "outside any frame: {dot}"
    );
}

#[test]
fn the_table_names_a_pipes_other_end_and_its_holders() {
    let fifo = |pid, fd_number, hash, flags| pipe_end(pid, fd_number, hash, 2, flags);
    // Each end shared by two processes, so both are listed.
    let survey = survey(
        vec![
            fifo(PID, 3, 5, libc::O_RDONLY),
            fifo(PID + 1, 3, 5, libc::O_RDONLY),
            fifo(PID, 4, 6, libc::O_WRONLY),
            fifo(PID + 1, 4, 6, libc::O_WRONLY),
            fd(PID, 5, 8, 2),
            fd(PID + 1, 5, 8, 2),
        ],
        &[],
    );
    let table = written_of(&survey, Format::Table { all: false });
    let writer = survey.id_of(PID, 4).unwrap();
    let line = format!(
        "    other end: {writer} (held by ?({PID}):4 ?({}):4)\n",
        PID + 1
    );
    assert!(table.contains(&line), "{table}");
    assert_eq!(
        table.matches("other end:").count(),
        2,
        "the pipe's ends only: {table}"
    );
    assert!(!table.contains("same inode"), "not repeated there: {table}");
}

#[test]
fn json_describes_sockets_and_names_each_ends_other_end() {
    use crate::record::{SocketRecord, Sockets};
    let unix = |peer_ino| SocketRecord {
        family: libc::AF_UNIX as u16,
        sock_type: libc::SOCK_STREAM as u16,
        state: 1,
        peer_ino,
        netns: 4_026_531_833,
        ..SocketRecord::default()
    };
    let records = vec![
        socket_fd(PID, 3, 100),
        socket_fd(PID + 1, 4, 101),
        fd(PID, 5, 7, 1),
    ];
    let mut kernel = crate::testing::kernel_of(&records);
    let mut walked = crate::testing::walked(records, &[]);
    walked.collection.sockets = Sockets::from_iter([(100, unix(101)), (101, unix(100))]);
    let survey = Survey::assemble(walked, crate::verify::VerifyMode::Ambiguous, &mut kernel);
    let json: serde_json::Value = serde_json::from_str(&written_of(&survey, Format::Json)).unwrap();
    let files = json["files"].as_array().unwrap();
    let (a, b) = (
        survey.id_of(PID, 3).unwrap().0,
        survey.id_of(PID + 1, 4).unwrap().0,
    );
    let file = |id: u64| files.iter().find(|f| f["id"] == id).unwrap();
    assert_eq!(file(a)["endpoints"], serde_json::json!([b]));
    assert_eq!(file(b)["endpoints"], serde_json::json!([a]));
    assert_eq!(
        file(a)["socket"],
        serde_json::json!({"family": "UNIX", "type": "STREAM", "protocol": "0", "state": "ESTAB",
                           "local": null, "remote": null, "path": null, "netns": 4_026_531_833u64})
    );
    let plain = survey.id_of(PID, 5).unwrap().0;
    assert_eq!(file(plain)["socket"], serde_json::Value::Null);
    assert_eq!(file(plain)["endpoints"], serde_json::json!([]));
}
