//! What the binary's test files share: the CI rule (in CI a test that needs BPF fails, never skips).

/// Whether tests run in CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Whether the tests run as root (loading BPF needs it here).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
