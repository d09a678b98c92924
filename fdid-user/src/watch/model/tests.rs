//! The model on surveys built from records and on hand-made events.

use fdid_ebpf::watch::{EXEC_FD_WORDS, ExecFds, SENT_FILES, SentFiles, WatchEvent, kind, via};

use super::*;
use crate::testing::{fd, survey};

/// A parent (100) holding a file at fd 3 (description 1) and a pipe end at fd 4 (description 2).
fn parent() -> Model {
    Model::from_survey(&survey(vec![fd(100, 3, 1, 1), fd(100, 4, 2, 1)], &[]))
}

fn event(kind: u8, pid: u32, fd: u32) -> WatchEvent {
    WatchEvent {
        time_ns: 1,
        pid,
        tid: pid,
        fd,
        kind,
        ..WatchEvent::default()
    }
}

fn install(pid: u32, fd: u32, hash: u64, via: u8, aux: u32) -> Event {
    Event::Install(WatchEvent {
        file_hash: hash,
        via,
        aux,
        dev: 254 << 20,
        ino: 1000 + hash,
        ..event(kind::INSTALL, pid, fd)
    })
}

/// What an exec event says stayed open: `fds` (below 64) of a 64-fd table.
fn still_open_after_exec(fds: &[u32]) -> ExecFds {
    let mut open = ExecFds {
        max_fds: 64,
        words: 1,
        open_fds: [0; EXEC_FD_WORDS],
    };
    for fd in fds {
        open.open_fds[0] |= 1 << fd;
    }
    open
}

fn holder(pid: u32, fd: u32) -> Option<Holder> {
    Some(Holder { pid, fd })
}

/// (kind, via, holder, from) of each change, for comparing without times and ids.
fn summary(changes: &[Change]) -> Vec<(ChangeKind, Via, Option<Holder>, Option<Holder>)> {
    changes
        .iter()
        .map(|c| (c.kind, c.via, c.holder, c.from))
        .collect()
}

#[test]
fn a_child_forked_after_the_survey_shares_each_fd_of_its_parent_inherited_at_fork() {
    let mut model = parent();
    let file = model.id_of(100, 3).unwrap();
    let changes = model.apply(&Event::Fork(WatchEvent {
        aux: 0,
        ..event(kind::FORK, 100, 200)
    }));
    assert_eq!(
        summary(&changes),
        [
            (ChangeKind::Share, Via::Fork, holder(200, 3), holder(100, 3)),
            (ChangeKind::Share, Via::Fork, holder(200, 4), holder(100, 4)),
        ]
    );
    assert_eq!(changes[0].id, file, "the survey's id");
    assert_eq!(model.id_of(200, 3), Some(file));
    // Its own table: a close in the child leaves the parent's fd.
    model.apply(&Event::Close(event(kind::CLOSE, 200, 3)));
    assert_eq!(model.id_of(100, 3), Some(file));
    assert_eq!(model.id_of(200, 3), None);
}

#[test]
fn a_clone_files_child_shares_the_table_itself() {
    let mut model = parent();
    let changes = model.apply(&Event::Fork(WatchEvent {
        aux: 1,
        ..event(kind::FORK, 100, 200)
    }));
    assert!(changes.iter().all(|c| c.via == Via::CloneFiles));
    // One table: what the child closes, the parent no longer has.
    model.apply(&Event::Close(event(kind::CLOSE, 200, 3)));
    assert_eq!(model.id_of(100, 3), None);
}

#[test]
fn dup2_onto_an_open_fd_drops_what_it_held_and_shares_the_source() {
    let mut model = parent();
    let (file, pipe) = (model.id_of(100, 3).unwrap(), model.id_of(100, 4).unwrap());
    let changes = model.apply(&install(100, 4, 1, via::DUP, 3));
    assert_eq!(
        summary(&changes),
        [
            (ChangeKind::Gone, Via::Dup, holder(100, 4), None),
            (ChangeKind::Share, Via::Dup, holder(100, 4), holder(100, 3)),
        ]
    );
    assert_eq!((changes[0].id, changes[1].id), (pipe, file));
}

#[test]
fn pidfd_getfd_names_the_process_and_fd_taken_from() {
    let mut model = parent();
    let changes = model.apply(&Event::Install(WatchEvent {
        from_pid: 100,
        ..match install(400, 9, 2, via::PIDFD_GETFD, 4) {
            Event::Install(e) => e,
            _ => unreachable!(),
        }
    }));
    assert_eq!(
        summary(&changes),
        [(
            ChangeKind::Share,
            Via::PidfdGetfd,
            holder(400, 9),
            holder(100, 4)
        )]
    );
}

#[test]
fn an_fd_the_survey_already_saw_is_not_reported_again() {
    let mut model = parent();
    assert!(model.apply(&install(100, 3, 1, via::OPEN, 0)).is_empty());
    assert!(
        model
            .apply(&Event::Fork(event(kind::FORK, 100, 100)))
            .is_empty(),
        "a fork of a process the survey walked"
    );
    assert!(
        model
            .apply(&Event::Close(event(kind::CLOSE, 100, 77)))
            .is_empty()
    );
}

#[test]
fn a_new_description_gets_the_id_a_later_survey_gives_it() {
    let mut model = parent();
    let changes = model.apply(&install(100, 9, 0xabc, via::OPEN, 0));
    assert_eq!(
        summary(&changes),
        [(ChangeKind::New, Via::Open, holder(100, 9), None)]
    );
    let later = survey(
        vec![fd(100, 3, 1, 1), fd(100, 4, 2, 1), fd(100, 9, 0xabc, 1)],
        &[],
    );
    assert_eq!(Some(changes[0].id), later.id_of(100, 9));
}

#[test]
fn exec_keeps_the_fds_without_close_on_exec_and_closes_the_others() {
    let mut model = parent();
    let open = still_open_after_exec(&[3]);
    let changes = model.apply(&Event::Exec(event(kind::EXEC, 100, 0), Box::new(open)));
    assert_eq!(
        summary(&changes),
        [
            (ChangeKind::Kept, Via::Exec, holder(100, 3), None),
            (ChangeKind::Gone, Via::Exec, holder(100, 4), None),
        ]
    );
    assert_eq!(model.id_of(100, 4), None);
}

#[test]
fn a_clone_files_child_that_execs_keeps_a_copy_and_the_parent_its_own() {
    let mut model = parent();
    model.apply(&Event::Fork(WatchEvent {
        aux: 1,
        ..event(kind::FORK, 100, 200)
    }));
    let open = still_open_after_exec(&[3, 4]);
    model.apply(&Event::Exec(event(kind::EXEC, 200, 0), Box::new(open)));
    // From now on the two tables are apart: the parent's close is its own.
    let closed = model.apply(&Event::Close(event(kind::CLOSE, 100, 3)));
    assert_eq!(
        summary(&closed),
        [(ChangeKind::Gone, Via::Close, holder(100, 3), None)]
    );
    assert!(model.id_of(200, 3).is_some(), "the child's copy keeps fd 3");
    // The parent is the last user of the old table: its exit ends its holders there.
    let exit = model.apply(&Event::Exit(event(kind::EXIT, 100, 0)));
    assert_eq!(
        summary(&exit),
        [(ChangeKind::Gone, Via::Exit, holder(100, 4), None)]
    );
    assert!(model.id_of(200, 4).is_some(), "and not the child's");
}

#[test]
fn exit_ends_every_holder_of_the_process_but_not_of_a_table_it_shared() {
    let mut model = parent();
    model.apply(&Event::Fork(WatchEvent {
        aux: 1,
        ..event(kind::FORK, 100, 200)
    }));
    let changes = model.apply(&Event::Exit(event(kind::EXIT, 200, 0)));
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| c.kind == ChangeKind::Gone && c.via == Via::Exit)
    );
    assert!(
        model.id_of(100, 3).is_some(),
        "the parent still holds its fds"
    );
    let last = model.apply(&Event::Exit(event(kind::EXIT, 100, 0)));
    assert_eq!(last.len(), 2);
    assert_eq!(model.id_of(100, 3), None);
}

#[test]
fn close_range_closes_the_fds_in_its_range_only() {
    let mut model = Model::from_survey(&survey(
        vec![fd(100, 3, 1, 1), fd(100, 4, 2, 1), fd(100, 9, 3, 1)],
        &[],
    ));
    let changes = model.apply(&Event::CloseRange(WatchEvent {
        aux: 8,
        ..event(kind::CLOSE_RANGE, 100, 4)
    }));
    assert_eq!(
        summary(&changes),
        [(ChangeKind::Gone, Via::CloseRange, holder(100, 4), None)]
    );
    assert!(model.id_of(100, 3).is_some() && model.id_of(100, 9).is_some());
}

fn release(hash: u64) -> Event {
    Event::Release(WatchEvent {
        file_hash: hash,
        ..event(kind::RELEASE, 100, 0)
    })
}

#[test]
fn a_release_told_before_the_close_that_caused_it_is_said_after_the_closes_gone() {
    let mut model = parent();
    let file = model.id_of(100, 3).unwrap();
    // The last reference goes inside close(), which is told at its exit: after the release.
    assert!(
        model.apply(&release(1)).is_empty(),
        "fd 3 still holds it here"
    );
    let close = model.apply(&Event::Close(event(kind::CLOSE, 100, 3)));
    assert_eq!(
        close.iter().map(|c| (c.kind, c.id)).collect::<Vec<_>>(),
        [(ChangeKind::Gone, file), (ChangeKind::Released, file)]
    );
    assert!(model.apply(&release(1)).is_empty(), "once");
    assert!(model.apply(&release(0xdead)).is_empty(), "unknown");
    let mut late = Vec::new();
    model.expire_held(u64::MAX, &mut late);
    assert!(late.is_empty(), "said already");
}

#[test]
fn a_release_told_before_the_dup2_that_caused_it_is_said_after_its_gone() {
    let mut model = parent();
    let file = model.id_of(100, 3).unwrap();
    // dup2(4, 3) dropped fd 3's description inside the call; the call is told at its exit.
    assert!(
        model.apply(&release(1)).is_empty(),
        "fd 3 still holds it here"
    );
    let dup2 = model.apply(&install(100, 3, 2, via::DUP, 4));
    assert_eq!(
        dup2.iter().map(|c| (c.kind, c.via)).collect::<Vec<_>>(),
        [
            (ChangeKind::Gone, Via::Dup),
            (ChangeKind::Released, Via::Close),
            (ChangeKind::Share, Via::Dup),
        ]
    );
    assert_eq!(dup2[1].id, file);
    let mut late = Vec::new();
    model.expire_held(u64::MAX, &mut late);
    assert!(late.is_empty(), "said already");
}

#[test]
fn a_release_whose_close_is_never_told_is_said_after_the_wait() {
    let mut model = parent();
    let pipe = model.id_of(100, 4).unwrap();
    assert!(model.apply(&release(2)).is_empty());
    let mut said = Vec::new();
    model.expire_held(1, &mut said);
    assert!(said.is_empty(), "released at 1: not before 1");
    model.expire_held(2, &mut said);
    assert_eq!(
        said.iter().map(|c| (c.kind, c.id)).collect::<Vec<_>>(),
        [(ChangeKind::Released, pipe)]
    );
}

#[test]
fn an_open_at_the_address_of_a_closed_description_is_a_new_description() {
    let mut model = parent();
    let file = model.id_of(100, 3).unwrap();
    model.apply(&Event::Close(event(kind::CLOSE, 100, 3)));
    // No release seen (not followed on every kernel); the address comes back for a new file.
    let changes = model.apply(&install(100, 5, 1, via::OPEN, 0));
    assert_eq!(
        summary(&changes),
        [(ChangeKind::New, Via::Open, holder(100, 5), None)]
    );
    assert_eq!(
        changes[0].id, file,
        "same hash and genid: the id a survey now gives it"
    );
    // Shared afterwards by dup: a share of the new one.
    let dup = model.apply(&install(100, 6, 1, via::DUP, 5));
    assert_eq!(dup[0].kind, ChangeKind::Share);
}

#[test]
fn a_close_told_after_another_threads_open_got_the_number_changes_nothing_more() {
    let mut model = parent();
    // Another thread's open took fd 3 again, and was told before the close.
    let opened = model.apply(&install(100, 3, 0x5eed, via::OPEN, 0));
    assert_eq!(
        summary(&opened),
        [
            (ChangeKind::Gone, Via::Close, holder(100, 3), None),
            (ChangeKind::New, Via::Open, holder(100, 3), None),
        ]
    );
    let new_id = model.id_of(100, 3);
    // The close says fd 3 holds that description now: the model has it already.
    let close = model.apply(&Event::Close(WatchEvent {
        file_hash: 0x5eed,
        ..event(kind::CLOSE, 100, 3)
    }));
    assert!(close.is_empty(), "{close:?}");
    assert_eq!(model.id_of(100, 3), new_id);
}

#[test]
fn a_close_told_before_the_open_that_took_the_number_again_closes_the_old_description() {
    let mut model = parent();
    // Read after the close: the fd already holds another description, not yet told.
    let close = model.apply(&Event::Close(WatchEvent {
        file_hash: 0x5eed,
        ..event(kind::CLOSE, 100, 3)
    }));
    assert_eq!(
        summary(&close),
        [(ChangeKind::Gone, Via::Close, holder(100, 3), None)]
    );
    let opened = model.apply(&install(100, 3, 0x5eed, via::OPEN, 0));
    assert_eq!(
        summary(&opened),
        [(ChangeKind::New, Via::Open, holder(100, 3), None)]
    );
    // And a plain close (nothing at the fd after it) of fd 4.
    let close = model.apply(&Event::Close(event(kind::CLOSE, 100, 4)));
    assert_eq!(
        summary(&close),
        [(ChangeKind::Gone, Via::Close, holder(100, 4), None)]
    );
    assert_eq!(model.id_of(100, 4), None);
}

mod passing;
