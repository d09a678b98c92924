//! Targets as people write them, and what they match in surveys built from records.

use std::net::Ipv4Addr;

use super::*;
use crate::{
    record::{FdRecord, SocketRecord, Sockets},
    survey::Survey,
    testing::{PID, fd, kernel_of, socket_fd, walked},
    verify::VerifyMode,
};

#[test]
fn every_kind_of_target_parses_and_nonsense_is_a_named_error() {
    let parse = |text: &str| text.parse::<WhoTarget>();
    assert_eq!(parse("tcp:8080").unwrap(), WhoTarget::Tcp(8080));
    assert_eq!(parse("udp:53").unwrap(), WhoTarget::Udp(53));
    assert_eq!(parse("pipe:[123]").unwrap(), WhoTarget::Pipe(123));
    assert_eq!(parse("socket:[9]").unwrap(), WhoTarget::Socket(9));
    assert_eq!(parse("socket:9").unwrap(), WhoTarget::Socket(9));
    assert_eq!(parse("4242:3").unwrap(), WhoTarget::Fd { pid: 4242, fd: 3 });
    assert_eq!(
        parse("254:0:1234").unwrap(),
        WhoTarget::Inode {
            major: 254,
            minor: 0,
            ino: 1234
        }
    );
    assert_eq!(
        parse("/run/app.sock").unwrap(),
        WhoTarget::Path("/run/app.sock".into())
    );
    assert_eq!(
        parse("app.sock").unwrap(),
        WhoTarget::Path("app.sock".into())
    );
    for bad in [
        "tcp:",
        "tcp:0",
        "tcp:70000",
        "udp:x",
        "pipe:[x]",
        "1:2:3:4",
        "",
        "ftp:21",
    ] {
        let error = parse(bad).unwrap_err();
        assert!(matches!(error, WhoError::BadTarget(_)), "{bad}: {error}");
        assert!(error.to_string().contains("tcp:PORT"), "{error}");
    }
}

#[test]
fn a_path_that_cannot_be_looked_up_is_an_error_naming_it() {
    let error = Resolved::new("/etc/passwd/fdid-who").unwrap_err();
    assert!(matches!(error, WhoError::Stat { .. }));
    assert_eq!(error.to_string(), "/etc/passwd/fdid-who");
}

#[test]
fn a_path_that_does_not_exist_matches_what_is_held_under_that_name_only() {
    // Gone from the file system: what is still held would be named `PATH (deleted)`; these fake
    // processes hold nothing by that name.
    let target = Resolved::new("/nonexistent/fdid-who").unwrap();
    assert_eq!(target.matching(&server()), Vec::<usize>::new());
    // A real open file of this process, by another name.
    let open = std::fs::File::open("/dev/null").unwrap();
    let me = std::process::id();
    let mut real = fd(me, std::os::fd::AsRawFd::as_raw_fd(&open) as u32, 72, 1);
    real.files_hash = 1;
    let files = survey_of(
        vec![fd(PID, 3, 70, 1), fd(PID, 4, 71, 1), real],
        Sockets::default(),
    );
    assert_eq!(
        target.matching(&files),
        Vec::<usize>::new(),
        "files by other names"
    );
}

fn tcp(state: u8, local_port: u16, remote_port: u16) -> SocketRecord {
    let mut s = SocketRecord {
        family: libc::AF_INET as u16,
        sock_type: libc::SOCK_STREAM as u16,
        protocol: libc::IPPROTO_TCP as u16,
        state,
        local_port,
        remote_port_be: remote_port.to_be(),
        ..SocketRecord::default()
    };
    s.local_addr[..4].copy_from_slice(&Ipv4Addr::LOCALHOST.octets());
    s.remote_addr[..4].copy_from_slice(&Ipv4Addr::LOCALHOST.octets());
    s
}

fn survey_of(records: Vec<FdRecord>, sockets: Sockets) -> Survey {
    let mut kernel = kernel_of(&records);
    let mut walk = walked(records, &[]);
    walk.collection.sockets = sockets;
    Survey::assemble(walk, VerifyMode::Ambiguous, &mut kernel)
}

/// A server (PID) listening on 8080 whose two workers inherited the listener; a client (PID+3)
/// connected to it, the connection accepted by the first worker; a UDP socket on 8080 too.
fn server() -> Survey {
    let records = vec![
        socket_fd(PID, 3, 100),
        socket_fd(PID + 1, 3, 100),
        socket_fd(PID + 2, 3, 100),
        socket_fd(PID + 1, 4, 101),
        socket_fd(PID + 3, 5, 102),
        socket_fd(PID + 3, 6, 103),
    ];
    let mut udp = tcp(7, 8080, 0);
    udp.sock_type = libc::SOCK_DGRAM as u16;
    udp.protocol = libc::IPPROTO_UDP as u16;
    let sockets = Sockets::from_iter([
        (100, tcp(10, 8080, 0)),
        (101, tcp(1, 8080, 40000)),
        (102, tcp(1, 40000, 8080)),
        (103, udp),
    ]);
    survey_of(records, sockets)
}

fn found(survey: &Survey, text: &str) -> Vec<(u32, u32)> {
    holders(survey, &Resolved::new(text).unwrap().matching(survey))
}

#[test]
fn a_port_is_held_by_its_listener_and_accepted_connections_not_by_clients() {
    let survey = server();
    assert_eq!(
        found(&survey, "tcp:8080"),
        vec![(PID, 3), (PID + 1, 3), (PID + 2, 3), (PID + 1, 4)]
    );
    assert_eq!(found(&survey, "udp:8080"), vec![(PID + 3, 6)]);
    assert_eq!(found(&survey, "tcp:40000"), vec![(PID + 3, 5)]);
    assert_eq!(found(&survey, "tcp:8081"), vec![]);
}

#[test]
fn sockets_pipes_inodes_and_fds_are_found_by_number() {
    let survey = server();
    assert_eq!(found(&survey, "socket:[101]"), vec![(PID + 1, 4)]);
    assert_eq!(
        found(&survey, &format!("{}:4", PID + 1)),
        vec![(PID + 1, 4)]
    );
    assert_eq!(
        found(&survey, &format!("{}:3", PID + 2)).len(),
        3,
        "the whole description"
    );
    let mut pipe = fd(PID, 7, 50, 1);
    pipe.mode = 0o010_600;
    let mut file = fd(PID, 8, 51, 1);
    file.dev = (8 << 20) | 1;
    let mut other_pipe = fd(PID, 9, 52, 1);
    other_pipe.mode = 0o010_600;
    let survey = survey_of(vec![pipe, file, other_pipe], Sockets::default());
    assert_eq!(
        found(&survey, &format!("pipe:[{}]", pipe.ino)),
        vec![(PID, 7)]
    );
    assert_eq!(found(&survey, &format!("socket:[{}]", pipe.ino)), vec![]);
    assert_eq!(found(&survey, &format!("8:1:{}", file.ino)), vec![(PID, 8)]);
    assert_eq!(found(&survey, &format!("8:2:{}", file.ino)), vec![]);
}

#[test]
fn the_table_names_every_holder_the_other_end_and_what_to_close() {
    let survey = server();
    let target = Resolved::new("tcp:8080").unwrap();
    let files = target.matching(&survey);
    let mut out = Vec::new();
    write_table(&mut out, &survey, &target, &files).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("TCP LISTEN 127.0.0.1:8080"), "{text}");
    assert!(
        text.contains(&format!(
            "    closing fd 3 of {PID}, fd 3 of {} and fd 3 of {} frees TCP LISTEN 127.0.0.1:8080\n",
            PID + 1,
            PID + 2
        )),
        "{text}"
    );
    let client = survey.id_of(PID + 3, 5).unwrap();
    assert!(
        text.contains(&format!(
            "    other end {client} TCP ESTAB 127.0.0.1:40000 → 127.0.0.1:8080, held by ?({}):5",
            PID + 3
        )),
        "{text}"
    );
    let mut out = Vec::new();
    write_table(&mut out, &survey, &Resolved::new("tcp:9").unwrap(), &[]).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "tcp:9: held by no process\n"
    );
}

#[test]
fn a_selection_keeps_the_descriptions_and_their_holders_with_their_ids() {
    let survey = server();
    let listener = survey.id_of(PID, 3).unwrap();
    let index = survey.files.iter().position(|f| f.id == listener).unwrap();
    let selected = survey.select(&[index]);
    assert_eq!(selected.files.len(), 1);
    assert_eq!(selected.len(), 3);
    assert_eq!(selected.id_of(PID + 2, 3), Some(listener));
    assert_eq!(selected.id_of(PID + 1, 4), None);
    assert_eq!(
        selected.fds().map(|f| f.id).collect::<Vec<_>>(),
        vec![listener; 3]
    );
}

#[test]
fn a_path_finds_its_files_descriptions_and_the_sockets_bound_to_it_not_their_clients() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = std::env::temp_dir().join(format!("fdid-who-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, socket) = (dir.join("file"), dir.join("app.sock"));
    std::fs::write(&file, b"x").unwrap();
    let _bound = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    let mut opened = fd(PID, 3, 60, 1);
    (opened.dev, opened.ino) = (crate::dev::from_user(meta.dev()), meta.ino());
    // The same inode number on another device is another file.
    let mut elsewhere = opened;
    (elsewhere.fd, elsewhere.dev, elsewhere.file_hash) = (4, opened.dev + 1, 61);
    let unix = |path: &str, peers: bool| {
        let mut s = SocketRecord {
            family: libc::AF_UNIX as u16,
            sock_type: libc::SOCK_STREAM as u16,
            state: 1,
            flags: if peers {
                crate::record::SOCKET_PATH_IS_PEERS
            } else {
                0
            },
            path_len: path.len() as u16,
            ..SocketRecord::default()
        };
        s.path[..path.len()].copy_from_slice(path.as_bytes());
        s
    };
    let path = socket.to_str().unwrap();
    let survey = survey_of(
        vec![
            opened,
            elsewhere,
            socket_fd(PID, 5, 500),
            socket_fd(PID, 6, 501),
            socket_fd(PID, 7, 502),
        ],
        Sockets::from_iter([
            (500, unix(path, false)),
            (501, unix(path, true)),
            (502, unix("/elsewhere.sock", false)),
        ]),
    );
    let file_holders = found(&survey, file.to_str().unwrap());
    let socket_holders = found(&survey, path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(file_holders, vec![(PID, 3)]);
    assert_eq!(
        socket_holders,
        vec![(PID, 5)],
        "bound to it; the client only names it"
    );
}

#[test]
fn references_held_by_no_fd_are_named_and_keep_the_description_open() {
    let mut in_flight = socket_fd(PID, 3, 300);
    in_flight.refs = 3;
    let survey = survey_of(
        vec![in_flight],
        Sockets::from_iter([(300, tcp(10, 9090, 0))]),
    );
    let table = |survey: &Survey, text: &str| {
        let target = Resolved::new(text).unwrap();
        let mut out = Vec::new();
        write_table(&mut out, survey, &target, &target.matching(survey)).unwrap();
        String::from_utf8(out).unwrap()
    };
    let text = table(&survey, "tcp:9090");
    assert!(
        text.contains("    and 2 reference(s) held by no fd"),
        "{text}"
    );
    assert!(
        text.contains("(once the references held by no fd are gone)"),
        "{text}"
    );
    let text = table(&server(), "tcp:8080");
    assert!(!text.contains("held by no fd"), "{text}");
}
