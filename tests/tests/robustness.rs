//! Surveys under churn (with `struct file` addresses reused for the same inode), and what the pointer
//! hashes reveal.

use fdid::{Scope, Survey, SurveyOptions, VerifyMode, collect::Target, collect::bpf::BpfOptions};
use fdid_tests::{Scenario, bpf_collect, bpf_survey, by_fd, kcmp_same};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

#[test]
fn fifty_surveys_under_churn_and_address_reuse_never_fail_and_never_misgroup() {
    const WORKERS: u32 = 120;
    const RUNS: usize = 50;
    let scenario = Scenario::start(SCENARIO, &["churn", &WORKERS.to_string()]);
    let parent = scenario.pid();
    let shared = scenario.fact("shared");
    let workers: Vec<(u32, u32)> = (0..WORKERS)
        .map(|i| {
            (
                scenario.fact(&format!("worker{i}")),
                scenario.fact(&format!("worker{i}_own")),
            )
        })
        .collect();
    // Ground truth, from the kernel, while every stable fd is alive (they never change).
    for &(worker, own) in &workers {
        assert!(
            kcmp_same(parent, shared, worker, shared),
            "every worker inherited `shared`"
        );
        assert!(
            !kcmp_same(parent, shared, worker, own),
            "`own` is another open"
        );
    }
    let worker_pids: std::collections::HashSet<u32> = workers.iter().map(|&(pid, _)| pid).collect();
    let (mut checked, mut wrong) = (0usize, 0usize);
    for run in 0..RUNS {
        let mut options = SurveyOptions::new(Scope::system());
        options.verify = if run % 2 == 0 {
            VerifyMode::Ambiguous
        } else {
            VerifyMode::All
        };
        let Some(survey) = bpf_survey(&options) else {
            return;
        };
        let shared_id = survey
            .id_of(parent, shared)
            .expect("the parent's shared fd");
        let mut own_ids = std::collections::HashSet::new();
        for &(worker, own) in &workers {
            checked += 2;
            wrong += usize::from(survey.id_of(worker, shared) != Some(shared_id));
            let own_id = survey.id_of(worker, own).expect("a worker's own fd");
            // One description per worker: distinct across workers and never held by another worker
            // (its copies passed over SCM_RIGHTS stay in the worker; its short-lived children inherit
            // it for a moment, and that is right).
            let file = survey.file(own_id).unwrap();
            let foreign = file
                .holders
                .iter()
                .map(|&h| survey.record(h).tgid)
                .filter(|&pid| pid != worker && worker_pids.contains(&pid))
                .count();
            wrong += usize::from(!own_ids.insert(own_id) || foreign > 0 || own_id == shared_id);
        }
        // Only what they inherited from the parent is held by several workers: the churn file's
        // reopened descriptions, whose freed addresses the next open reuses, are each one worker's.
        for file in &survey.files {
            let holding: std::collections::HashSet<u32> = file
                .holders
                .iter()
                .map(|&h| survey.record(h).tgid)
                .collect();
            let workers_holding = holding
                .iter()
                .filter(|pid| worker_pids.contains(pid))
                .count();
            wrong += usize::from(workers_holding > 1 && !holding.contains(&parent));
        }
        assert_eq!(
            wrong, 0,
            "run {run}: stable fds grouped against the ground truth, reopened ones kept apart"
        );
    }
    // Still the same ground truth at the end.
    for &(worker, _) in &workers {
        assert!(kcmp_same(parent, shared, worker, shared));
    }
    eprintln!(
        "{RUNS} surveys under churn of {WORKERS} workers: {checked} stable fds checked, {wrong} wrong"
    );
}

#[test]
fn pointer_hashes_are_keyed_per_boot_and_a_run_without_the_boots_key_has_its_own() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let target = Target::Pids(vec![pid]);
    let Some(first) = bpf_collect(&target, &BpfOptions::default()) else {
        return;
    };
    let second = bpf_collect(&target, &BpfOptions::default()).unwrap();
    let own_key = BpfOptions {
        boot_key: None,
        ..BpfOptions::default()
    };
    let own = bpf_collect(&target, &own_key).unwrap();
    let (first, second, own) = (by_fd(&first, pid), by_fd(&second, pid), by_fd(&own, pid));
    let (file, dup) = (scenario.fact("file"), scenario.fact("file_dup"));
    assert_eq!(
        first[&file].file_hash, first[&dup].file_hash,
        "one description, one hash within a run"
    );
    for (fd, record) in &first {
        assert_eq!(
            (record.file_hash, record.files_hash),
            (second[fd].file_hash, second[fd].files_hash),
            "fd {fd}: two runs of one boot hash alike"
        );
        assert_ne!(
            record.file_hash, own[fd].file_hash,
            "fd {fd}: a key of its own hashes differently"
        );
        assert_ne!(record.files_hash, own[fd].files_hash);
    }
    // Survey output carries ids, never the hashes.
    let survey = Survey::run(&SurveyOptions::new(Scope::pids([pid]))).unwrap();
    let mut json = Vec::new();
    fdid::report::json::write(&mut json, &survey).unwrap();
    let text = String::from_utf8(json).unwrap();
    for record in first.values().chain(own.values()) {
        assert!(
            !text.contains(&record.file_hash.to_string()),
            "a hash leaked into the JSON"
        );
    }
}
