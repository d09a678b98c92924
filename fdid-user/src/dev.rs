//! Device numbers, the one place they change encoding: records carry the kernel's internal one
//! (`s_dev`, major << 20 | minor, [`fdid_ebpf::kernel_dev_major`]); `stat(2)` and CRIU's genid use
//! userspace's `dev_t`; people read `major:minor`.

use fdid_ebpf::{kernel_dev_major, kernel_dev_minor};

/// A userspace `dev_t` (from `stat(2)`) in the kernel's encoding, as records carry it.
pub fn from_user(dev: u64) -> u32 {
    (libc::major(dev) << 20) | (libc::minor(dev) & 0xf_ffff)
}

/// A record's device as a userspace `dev_t`.
pub fn to_user(dev: u32) -> u64 {
    libc::makedev(kernel_dev_major(dev), kernel_dev_minor(dev))
}

/// A record's device as people write it, `major:minor`.
pub fn display(dev: u32) -> String {
    format!("{}:{}", kernel_dev_major(dev), kernel_dev_minor(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_agree_on_major_and_minor() {
        // 254:0 (a virtio disk), 8:17, and a minor above 255 (its bits are split in dev_t).
        for (major, minor) in [(254, 0), (8, 17), (259, 1_048_575)] {
            let user = libc::makedev(major, minor);
            let kernel = from_user(user);
            assert_eq!(kernel, major << 20 | minor);
            assert_eq!(to_user(kernel), user);
            assert_eq!(display(kernel), format!("{major}:{minor}"));
        }
    }
}
