//! The C allocator's tuning knobs, which nix does not wrap.

/// Caps the number of glibc malloc arenas (M_ARENA_MAX): each thread otherwise gets its
/// own, and their touched pages are most of a small daemon's private memory. Call it
/// before other threads exist.
pub fn limit_arenas(n: i32) {
    // SAFETY: mallopt only tunes the allocator and takes integers.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) };
}
