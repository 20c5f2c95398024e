//! Mounts: the new mount API (open_tree, move_mount, mount_setattr, fsopen) lives in
//! berth-sys, shared with the snapshotter; this module names it for the runtime.

pub use berth_sys::mount::*;
