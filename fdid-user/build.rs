//! Finds the BPF object built by `cargo xtask build-ebpf` so that `src/collect/bpf.rs` can embed it.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=FDID_BPF_OBJECT");
    let object = match std::env::var_os("FDID_BPF_OBJECT") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/bpf/bpfel-unknown-none/release/fdid-ebpf"),
    };
    println!("cargo::rerun-if-changed={}", object.display());
    if !object.is_file() {
        println!(
            "cargo::error=the BPF object {} does not exist: build through `cargo xtask build` \
             (or `cargo xtask test`), or point FDID_BPF_OBJECT at a built object",
            object.display()
        );
        return;
    }
    println!("cargo::rustc-env=FDID_BPF_OBJECT_PATH={}", object.display());
}
