//! The printed lines, for changes made by hand.

use super::*;

fn printer(json: bool) -> Printer<Vec<u8>> {
    let mut printer = Printer::new(Vec::new(), json, |pid| format!("proc{pid}"));
    printer.learn_comm(4242, b"python3\0\0\0\0\0\0\0\0\0");
    printer.learn_comm(4243, b"python3\0\0\0\0\0\0\0\0\0");
    printer
}

fn share(via: Via, from: Option<Holder>) -> Change {
    Change {
        time_ns: 5,
        kind: ChangeKind::Share,
        via,
        holder: Some(Holder { pid: 4243, fd: 5 }),
        id: OpenFileId::new(0x0020_8ee8, 8),
        from,
    }
}

fn text(mut printer: Printer<Vec<u8>>) -> String {
    printer.flush().unwrap();
    String::from_utf8(printer.sink).unwrap()
}

#[test]
fn a_long_batch_is_written_out_in_whole_lines_before_it_ends_and_nothing_twice() {
    let mut p = printer(true);
    let lines = 2 * WRITE_AT / 100;
    for fd in 0..lines as u32 {
        let mut change = share(Via::Dup, None);
        change.holder = Some(Holder { pid: 4243, fd });
        p.change(&change).unwrap();
    }
    let written = String::from_utf8(p.sink.clone()).unwrap();
    assert!(!written.is_empty(), "written before the batch's flush");
    assert!(written.ends_with('\n'), "in whole lines");
    let all = text(p);
    assert!(all.starts_with(&written));
    let fds: Vec<u64> = all
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["fd"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(fds, (0..lines as u64).collect::<Vec<_>>());
}

#[test]
fn a_share_inherited_at_fork_reads_as_a_sentence() {
    let mut p = printer(false);
    p.change(&share(Via::Fork, Some(Holder { pid: 4242, fd: 5 })))
        .unwrap();
    assert_eq!(
        text(p),
        "python3(4243) fd 5 now shares 00208ee8:8 with python3(4242):5 — inherited at fork\n"
    );
}

#[test]
fn every_json_line_has_the_same_fields_and_from_is_null_when_unknown() {
    let mut p = printer(true);
    p.change(&share(Via::ScmRights, None)).unwrap();
    p.change(&Change {
        kind: ChangeKind::Released,
        holder: None,
        via: Via::Close,
        ..share(Via::Close, None)
    })
    .unwrap();
    let out = text(p);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{{\"time_ns\":5,\"event\":\"share\",\"via\":\"scm_rights\",\"pid\":4243,\"fd\":5,\"id\":{},\"comm\":\"python3\",\"from\":null}}",
            0x0020_8ee8_0000_0008u64
        )
    );
    assert!(lines[1].contains("\"event\":\"released\"") && lines[1].contains("\"pid\":null"));
}

#[test]
fn the_summary_counts_shares_by_kind_and_tells_each_ones_story() {
    let mut p = printer(true);
    let from = Some(Holder { pid: 4242, fd: 5 });
    p.change(&share(Via::Fork, from)).unwrap();
    p.change(&Change {
        kind: ChangeKind::Kept,
        via: Via::Exec,
        from: None,
        ..share(Via::Exec, None)
    })
    .unwrap();
    let mut dup = share(Via::Dup, Some(Holder { pid: 4243, fd: 3 }));
    dup.holder = Some(Holder { pid: 4243, fd: 9 });
    p.change(&dup).unwrap();
    p.change(&Change {
        kind: ChangeKind::Gone,
        via: Via::Close,
        ..dup.clone()
    })
    .unwrap();
    assert_eq!(p.provenance()[0].exec, Some(true), "kept across exec");
    assert_eq!(p.provenance()[1].ended, Some(Via::Close));
    p.summary(9, 0, 0, &[]).unwrap();
    let out = text(p);
    let summary = out.lines().last().unwrap();
    assert!(
        summary
            .starts_with("{\"event\":\"summary\",\"time_ns\":9,\"shares\":{\"dup\":1,\"fork\":1}"),
        "{summary}"
    );
    assert!(
        summary.contains("\"via\":\"fork\",\"from\":{\"pid\":4242,\"fd\":5},\"exec\":\"kept\"")
    );
    assert!(summary.contains("\"lost\":0"));
}

#[test]
fn a_process_no_event_named_is_named_by_the_lookup() {
    let mut p = printer(false);
    let mut change = share(Via::Dup, Some(Holder { pid: 7, fd: 1 }));
    change.holder = Some(Holder { pid: 7, fd: 2 });
    p.change(&change).unwrap();
    assert!(text(p).starts_with("proc7(7) fd 2 now shares"));
}

#[test]
fn a_long_watch_keeps_the_latest_stories_and_says_how_many_it_let_go() {
    let mut p = printer(true).keep(2);
    let at = |fd| {
        let mut change = share(Via::Dup, Some(Holder { pid: 4243, fd: 3 }));
        change.holder = Some(Holder { pid: 4243, fd });
        change
    };
    for fd in [10, 11, 12] {
        p.change(&at(fd)).unwrap();
    }
    // The end of the forgotten share (fd 10) touches none of the listed ones; fd 12's is its own.
    for fd in [10, 12] {
        p.change(&Change {
            kind: ChangeKind::Gone,
            via: Via::Close,
            ..at(fd)
        })
        .unwrap();
    }
    let listed: Vec<(u32, Option<Via>)> = p
        .provenance()
        .iter()
        .map(|share| (share.holder.fd, share.ended))
        .collect();
    assert_eq!(listed, [(11, None), (12, Some(Via::Close))]);
    p.summary(9, 0, 0, &[]).unwrap();
    let out = text(p);
    let summary = out.lines().last().unwrap();
    assert!(summary.contains("\"shares\":{\"dup\":3}"), "{summary}");
    assert!(summary.contains("\"unlisted\":1,\"lost\":0"), "{summary}");
}

#[test]
fn a_process_is_named_as_the_latest_event_says_and_by_proc_until_one_does() {
    let mut p = printer(true);
    let mut change = share(Via::Fork, None);
    p.change(&change).unwrap();
    p.learn_comm(4243, b"sleep\0\0\0\0\0\0\0\0\0\0\0");
    p.change(&change).unwrap();
    p.learn_comm(4243, b"sleep\0\0\0\0\0\0\0\0\0\0\0");
    p.change(&change).unwrap();
    // Never named by an event: /proc's name, then the events'.
    change.holder = Some(Holder { pid: 4244, fd: 5 });
    p.change(&change).unwrap();
    p.learn_comm(4244, b"proc4244\0\0\0\0\0\0\0\0");
    p.change(&change).unwrap();
    p.learn_comm(4244, b"bash\0\0\0\0\0\0\0\0\0\0\0\0");
    p.change(&change).unwrap();
    let comms: Vec<String> = text(p)
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            line["comm"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        comms,
        ["python3", "sleep", "sleep", "proc4244", "proc4244", "bash"]
    );
}

#[test]
fn a_machine_whose_processes_keep_taking_new_names_keeps_the_names_made_bounded_not_forgotten() {
    let mut p = printer(true);
    let name = |n: u32| {
        let mut raw = [0u8; 16];
        raw[..10].copy_from_slice(format!("job-{n:06}").as_bytes());
        raw
    };
    for n in 0..NAMES_KEPT as u32 + 10 {
        p.learn_comm(100_000 + n, &name(n));
    }
    assert!(p.names.len() < NAMES_KEPT, "{} names kept", p.names.len());
    // Processes named before the names were let go keep theirs.
    let mut change = share(Via::Fork, None);
    change.holder = Some(Holder {
        pid: 100_000,
        fd: 5,
    });
    p.change(&change).unwrap();
    let line: serde_json::Value = serde_json::from_str(text(p).trim_end()).unwrap();
    assert_eq!(line["comm"], "job-000000");
}

#[test]
fn each_line_of_a_fork_says_its_own_fd_and_id_and_the_next_events_lines_nothing_of_them() {
    let mut p = printer(true);
    let fork = |fd: u32, from_pid: u32| Change {
        holder: Some(Holder { pid: 4243, fd }),
        id: OpenFileId::new(0x0020_8ee8, fd),
        ..share(Via::Fork, Some(Holder { pid: from_pid, fd }))
    };
    let mut changes: Vec<Change> = (0..3).map(|fd| fork(fd, 4242)).collect();
    // At the same moment: another source, another kind, another way, another holder, no holder.
    changes.push(fork(3, 4241));
    changes.push(Change {
        kind: ChangeKind::Gone,
        via: Via::Exit,
        from: None,
        ..fork(4, 4242)
    });
    changes.push(Change {
        via: Via::Dup,
        ..fork(5, 4242)
    });
    changes.push(Change {
        holder: Some(Holder { pid: 4242, fd: 6 }),
        ..fork(6, 4242)
    });
    changes.push(Change {
        kind: ChangeKind::Released,
        holder: None,
        from: None,
        ..fork(7, 4242)
    });
    for change in &changes {
        p.change(change).unwrap();
    }
    let out = text(p);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), changes.len());
    for (line, change) in lines.iter().zip(&changes) {
        let holder = |h: Option<Holder>| match h {
            Some(h) => (serde_json::json!(h.pid), serde_json::json!(h.fd)),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let (pid, fd) = holder(change.holder);
        let from = match change.from {
            Some(from) => serde_json::json!({"pid": from.pid, "fd": from.fd}),
            None => serde_json::Value::Null,
        };
        let comm = match change.holder {
            Some(_) => serde_json::json!("python3"),
            None => serde_json::Value::Null,
        };
        let expected = serde_json::json!({
            "time_ns": 5, "event": change.kind.name(), "via": change.via.name(), "pid": pid,
            "fd": fd, "id": change.id.0, "comm": comm, "from": from,
        });
        assert_eq!(line, &expected);
    }
}

#[test]
fn more_descriptions_than_the_id_cache_has_room_for_each_keep_their_own_id_and_fds_of_any_width() {
    let mut p = printer(true);
    // Thrice as many ids as slots, of every length, each written twice far apart: slots are
    // shared and overwritten in between. Fds of one, two, three and more digits.
    let ids: Vec<OpenFileId> = (0..3 * 1024u32)
        .map(|n| OpenFileId::new(n.wrapping_mul(2_654_435_761) >> (n % 32), n + 1))
        .collect();
    let changes: Vec<Change> = ids
        .iter()
        .chain(ids.iter().rev())
        .enumerate()
        .map(|(n, &id)| {
            let fd = [n as u32 % 130, 1_000_003 * (n as u32 % 3)][n % 2];
            Change {
                id,
                holder: Some(Holder { pid: 4243, fd }),
                ..share(
                    Via::Dup,
                    Some(Holder {
                        pid: 4243,
                        fd: fd / 7,
                    }),
                )
            }
        })
        .collect();
    for change in &changes {
        p.change(change).unwrap();
    }
    let written: Vec<(u64, u64, u64)> = text(p)
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let number = |value: &serde_json::Value| value.as_u64().unwrap();
            (
                number(&line["fd"]),
                number(&line["id"]),
                number(&line["from"]["fd"]),
            )
        })
        .collect();
    let expected: Vec<(u64, u64, u64)> = changes
        .iter()
        .map(|c| {
            let fd = |h: Option<Holder>| u64::from(h.unwrap().fd);
            (fd(c.holder), c.id.0, fd(c.from))
        })
        .collect();
    assert_eq!(written, expected);
}
