//! Helpers shared by the benches: CPU pinning, driving python3, medians.
#![allow(dead_code)] // each bench uses a subset

use std::process::Command;

/// Pins the calling thread to `cpu` (and, through fork, the children it starts).
pub fn pin(cpu: usize) {
    // SAFETY: plain affinity syscall on this thread with a zeroed, filled cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Lets the calling thread run on every CPU again.
pub fn unpin() {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `python3 -c code` and parses the one number it prints.
pub fn python(code: &str) -> Option<f64> {
    let out = Command::new("python3").arg("-c").arg(code).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The median of `v` (the upper one of an even count); `v` must not be empty.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}
