//! fdid's BPF iterator program. Built for `bpfel-unknown-none` by fdid-user's build script; on any other
//! target this file compiles to an empty `main` so that workspace-wide host builds keep working.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod program;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
