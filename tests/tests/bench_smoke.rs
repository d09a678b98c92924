//! A quick smoke of `cargo xtask bench`: the smallest size, one run, with its ground-truth check.

use std::process::Command;

#[test]
fn the_benchmark_runs_at_its_smallest_size_and_matches_the_ground_truth() {
    let bench = env!("CARGO_BIN_EXE_fdid-bench");
    // `cargo test --workspace` builds fdid-user's `fdid` next to this package's binaries.
    let fdid = std::path::Path::new(bench).with_file_name("fdid");
    let out = std::env::temp_dir().join(format!("fdid-bench-smoke-{}", std::process::id()));
    let output = Command::new(bench)
        .args(["--quick", "--out"])
        .arg(&out)
        .arg("--fdid")
        .arg(&fdid)
        .output()
        .expect("run fdid-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success()
        && !fdid_tests::in_ci()
        && let Some(reason) = fdid_tests::bpf_unavailable_reason()
    {
        eprintln!("SKIPPED: the benchmark needs BPF ({reason}): {stderr}");
        return;
    }
    assert!(output.status.success(), "fdid-bench failed: {stderr}");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md written");
    let rows: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| 4") && l.contains("| fdid"))
        .collect();
    assert_eq!(
        rows.len(),
        6,
        "five fdid survey rows and the procfs row:\n{report}"
    );
    // Each row's own JSON (two formatting chunks at this size), parsed, against the truth.
    for row in &rows {
        assert!(
            row.contains("| ok ("),
            "grouping checked against the ground truth: {row}"
        );
    }
    assert!(report.contains("raw walk"), "{report}");
    let svg = std::fs::read_to_string(out.join("time-vs-fds.svg")).expect("plot written");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "a plot with lines"
    );
    let _ = std::fs::remove_dir_all(&out);
}
