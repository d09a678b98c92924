//! Files passed with SCM_RIGHTS: receipts named by their sends, in whichever order the two are
//! told.

use super::*;

#[test]
fn a_file_received_with_scm_rights_names_the_fd_it_was_sent_from() {
    let mut model = parent();
    let mut files = SentFiles {
        count: 1,
        _pad: 0,
        fds: [u32::MAX; SENT_FILES],
        file_hashes: [0; SENT_FILES],
    };
    (files.fds[0], files.file_hashes[0]) = (3, 1);
    model.apply(&Event::Send(event(kind::SEND, 100, 0), Box::new(files)));
    let received = model.apply(&install(300, 5, 1, via::SCM_RIGHTS, 0));
    assert_eq!(
        summary(&received),
        [(
            ChangeKind::Share,
            Via::ScmRights,
            holder(300, 5),
            holder(100, 3)
        )]
    );
    // A second receipt of it without a send told: held back until it has waited long enough,
    // then a share from an unknown sender.
    let again = model.apply(&install(300, 6, 1, via::SCM_RIGHTS, 0));
    assert!(again.is_empty(), "{again:?}");
    let mut expired = Vec::new();
    model.expire_held(1, &mut expired);
    assert!(expired.is_empty(), "received at 1: not before 1");
    model.expire_held(2, &mut expired);
    assert_eq!(
        summary(&expired),
        [(ChangeKind::Share, Via::ScmRights, holder(300, 6), None)]
    );
}

/// `pid` sent its fd `fd`, which holds the description `hash`, with SCM_RIGHTS.
fn send(pid: u32, fd: u32, hash: u64) -> Event {
    let mut files = SentFiles {
        count: 1,
        _pad: 0,
        fds: [u32::MAX; SENT_FILES],
        file_hashes: [0; SENT_FILES],
    };
    (files.fds[0], files.file_hashes[0]) = (fd, hash);
    Event::Send(event(kind::SEND, pid, 0), Box::new(files))
}

#[test]
fn a_receipt_told_before_its_send_waits_for_it_and_names_the_sender() {
    let mut model = parent();
    // The receiver woke and got to its syscall's exit before the sender got to its own.
    let received = model.apply(&install(300, 5, 1, via::SCM_RIGHTS, 0));
    assert!(received.is_empty(), "{received:?}");
    assert!(
        model.id_of(300, 5).is_some(),
        "the fd is in the table already"
    );
    let told = model.apply(&send(100, 3, 1));
    assert_eq!(
        summary(&told),
        [(
            ChangeKind::Share,
            Via::ScmRights,
            holder(300, 5),
            holder(100, 3)
        )]
    );
    // Told once: nothing left to expire, and the send is not waiting for another receipt.
    let mut expired = Vec::new();
    model.expire_held(u64::MAX, &mut expired);
    assert!(expired.is_empty());
    let later = model.apply(&install(300, 6, 1, via::SCM_RIGHTS, 0));
    assert!(later.is_empty(), "held: no send of it left");
}

#[test]
fn what_follows_a_held_receipt_waits_behind_it_until_its_send_names_the_sender() {
    let mut model = parent();
    // The receiver got the file, closed it and forked before the sender got to its syscall's exit;
    // meanwhile the sender opened something.
    assert!(
        model
            .apply(&install(300, 5, 1, via::SCM_RIGHTS, 0))
            .is_empty()
    );
    assert!(
        model
            .apply(&Event::Close(event(kind::CLOSE, 300, 5)))
            .is_empty()
    );
    assert!(model.apply(&install(100, 9, 0x9, via::OPEN, 0)).is_empty());
    let told = model.apply(&send(100, 3, 1));
    assert_eq!(
        summary(&told),
        [
            (
                ChangeKind::Share,
                Via::ScmRights,
                holder(300, 5),
                holder(100, 3)
            ),
            (ChangeKind::Gone, Via::Close, holder(300, 5), None),
            (ChangeKind::New, Via::Open, holder(100, 9), None),
        ]
    );
    // Nothing held any more: the next change goes out at once.
    let next = model.apply(&Event::Close(event(kind::CLOSE, 100, 9)));
    assert_eq!(summary(&next).len(), 1);
}

#[test]
fn a_send_told_after_its_receipt_went_out_unnamed_is_not_kept_for_a_later_receipt() {
    let mut model = parent();
    model.apply(&install(300, 5, 1, via::SCM_RIGHTS, 0));
    let behind = model.apply(&Event::Close(event(kind::CLOSE, 300, 5)));
    assert!(behind.is_empty());
    let mut expired = Vec::new();
    model.expire_held(2, &mut expired);
    assert_eq!(
        summary(&expired),
        [
            (ChangeKind::Share, Via::ScmRights, holder(300, 5), None),
            (ChangeKind::Gone, Via::Close, holder(300, 5), None),
        ]
    );
    // The send, told too late, belongs to that receipt: a later receipt of the same address (the
    // file freed, another one made there) must not be said to come from it.
    assert!(model.apply(&send(100, 3, 1)).is_empty());
    assert!(
        model
            .apply(&install(400, 7, 1, via::SCM_RIGHTS, 0))
            .is_empty()
    );
    let mut expired = Vec::new();
    model.expire_held(u64::MAX, &mut expired);
    assert_eq!(
        summary(&expired),
        [(ChangeKind::Share, Via::ScmRights, holder(400, 7), None)]
    );
}
