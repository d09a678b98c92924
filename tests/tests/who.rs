//! `who` and endpoints on live processes: the scenarios' own record of who holds what, kcmp, and the
//! sockets' addresses as the socket API gave them.

use std::collections::BTreeSet;

use fdid::{
    Scope, Survey, SurveyOptions,
    survey::OutsideHolders,
    who::{self, Resolved},
};
use fdid_tests::{Scenario, bpf_survey, id, kcmp_same};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

fn whole_system() -> Option<Survey> {
    let mut options = SurveyOptions::new(Scope::system());
    options.outside = OutsideHolders::Always;
    bpf_survey(&options)
}

/// (pid, fd) of every holder of every description `who TARGET` finds.
fn holders_of(survey: &Survey, target: &str) -> BTreeSet<(u32, u32)> {
    let files = Resolved::new(target).unwrap().matching(survey);
    who::holders(survey, &files).into_iter().collect()
}

#[test]
fn a_worker_that_inherited_the_listener_keeps_the_port_held() {
    let scenario = Scenario::start(SCENARIO, &["server", "2"]);
    let (server, port, listener) = (
        scenario.pid(),
        scenario.fact("port"),
        scenario.fact("listener"),
    );
    let workers = [scenario.fact("worker0"), scenario.fact("worker1")];
    let Some(survey) = whole_system() else {
        return;
    };
    let held = holders_of(&survey, &format!("tcp:{port}"));
    let expected = BTreeSet::from([
        (server, listener),
        (workers[0], listener),
        (workers[1], listener),
        (server, scenario.fact("accepted")),
    ]);
    assert_eq!(
        held, expected,
        "the listener's three holders and the accepted connection"
    );
    for worker in workers {
        assert!(
            kcmp_same(server, listener, worker, listener),
            "one description"
        );
    }
    let file = survey.file(id(&survey, server, listener)).unwrap();
    let socket = survey.socket(file).expect("the listener is described");
    assert_eq!(socket.state_name(), "LISTEN");
    assert_eq!(socket.local.map(|a| a.port()), Some(port as u16));
    assert_eq!(socket.to_string(), format!("TCP LISTEN 127.0.0.1:{port}"));
    // The other sockets the workers inherited: UDP, and TCP and UDP on IPv6 when there is one.
    for (protocol, port, fd) in [
        ("udp", "udp_port", "udp"),
        ("tcp", "port6", "listener6"),
        ("udp", "udp6_port", "udp6"),
    ] {
        let (Some(port), Some(fd)) = (scenario.maybe_fact(port), scenario.maybe_fact(fd)) else {
            eprintln!("no IPv6 loopback here: {protocol} on it not checked");
            continue;
        };
        assert_eq!(
            holders_of(&survey, &format!("{protocol}:{port}")),
            BTreeSet::from([(server, fd), (workers[0], fd), (workers[1], fd)]),
            "{protocol}:{port}"
        );
    }
}

#[test]
fn a_free_port_is_held_by_nobody() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(survey) = whole_system() else {
        return;
    };
    assert!(holders_of(&survey, &format!("tcp:{port}")).is_empty());
}

#[test]
fn the_two_ends_of_a_connection_point_at_each_other() {
    let scenario = Scenario::start(SCENARIO, &["server", "0"]);
    let server = scenario.pid();
    let Some(survey) = whole_system() else {
        return;
    };
    let (client, accepted) = (
        id(&survey, server, scenario.fact("client")),
        id(&survey, server, scenario.fact("accepted")),
    );
    assert_eq!(survey.file(client).unwrap().endpoints, vec![accepted]);
    assert_eq!(survey.file(accepted).unwrap().endpoints, vec![client]);
    let listener = id(&survey, server, scenario.fact("listener"));
    assert_eq!(
        survey.file(listener).unwrap().endpoints,
        vec![],
        "a listener has no other end"
    );
}

#[test]
fn socketpairs_pipes_and_accepted_unix_connections_have_their_other_ends() {
    let scenario = Scenario::start(SCENARIO, &["ends"]);
    let parent = scenario.pid();
    let Some(survey) = whole_system() else {
        return;
    };
    let of = |pid: u32, fact: &str| id(&survey, pid, scenario.fact(fact));
    let ends = |a| survey.file(a).unwrap().endpoints.clone();

    // The socketpair's second end lives only in the child that received it over SCM_RIGHTS.
    let (pair_a, pair_b) = (
        of(parent, "pair_a"),
        of(scenario.fact("pair_child"), "pair_b_in_child"),
    );
    assert_eq!(ends(pair_a), vec![pair_b]);
    assert_eq!(ends(pair_b), vec![pair_a]);

    // The parent reads a pipe whose only writer is the child that inherited the write end.
    let (reader, writer) = (of(parent, "pipe_r"), of(scenario.fact("leaker"), "pipe_w"));
    assert_eq!(ends(reader), vec![writer]);
    assert_eq!(ends(writer), vec![reader]);
    let leaker = scenario.fact("leaker");
    assert!(
        holders_of(&survey, &format!("{leaker}:{}", scenario.fact("pipe_w")))
            .contains(&(leaker, scenario.fact("pipe_w"))),
        "who PID:FD"
    );

    // A unix connection on a path: client and accepted point at each other; the path finds the
    // listener and the accepted connection (both bound to it), not the client.
    let (client, accepted) = (of(parent, "unix_client"), of(parent, "unix_accepted"));
    assert_eq!(ends(client), vec![accepted]);
    assert_eq!(ends(accepted), vec![client]);
    let path = std::env::temp_dir().join(format!("fdid-scenario-{parent}-app.sock"));
    assert_eq!(
        holders_of(&survey, path.to_str().unwrap()),
        BTreeSet::from([
            (parent, scenario.fact("unix_listener")),
            (parent, scenario.fact("unix_accepted"))
        ])
    );
    let client_socket = survey.socket(survey.file(client).unwrap()).unwrap();
    assert!(client_socket.path_is_peers);
    assert_eq!(client_socket.path.as_deref(), path.to_str());
}

#[test]
fn a_deleted_file_is_found_by_its_old_name_with_every_holder() {
    // The scm scenario's file is unlinked once the parent opened it and passed it to its child.
    let scenario = Scenario::start(SCENARIO, &["scm"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child"));
    let Some(survey) = whole_system() else {
        return;
    };
    let path = std::env::temp_dir().join(format!("fdid-scenario-{parent}-scm"));
    assert!(!path.exists());
    assert_eq!(
        holders_of(&survey, path.to_str().unwrap()),
        BTreeSet::from([
            (parent, scenario.fact("file")),
            (child, scenario.fact("child_fd"))
        ])
    );
}
