//! The parent's side of a process in a container, the init of `create` or a process of
//! `exec`: `spawn` forks it into its namespaces and cgroup and guards it, `handshake` drives
//! the set-up messages over `channel` (whose documentation draws the whole sequence), and
//! `start` is the later handshake between `berth start` and a created init.

pub mod channel;
pub mod handshake;
pub mod spawn;
pub mod start;

/// The operation a child is made for, as its debug lines, errors and failpoints name the
/// steps. The debug lines carry runc's words for the same steps (nsexec, init(),
/// setns_init, the completion pipe): scripts and runc's own tests look for them.
pub struct Op {
    /// The child in debug lines.
    pub child: &'static str,
    /// The child in the handshake's errors ("sync with …", "unexpected message from …").
    pub peer: &'static str,
    /// The child when it died during set-up.
    pub peer_in_full: &'static str,
    /// What the child does after `Go`, in the debug line.
    pub after_go: &'static str,
    /// The head of the debug line when the child reports `Ready`.
    pub at_ready: &'static str,
    /// Failpoints: cloned, in its cgroup, `Go` sent, `Ready` received.
    pub cloned: &'static str,
    pub in_cgroup: &'static str,
    pub go_sent: &'static str,
    pub ready_received: &'static str,
}

pub const CREATE: Op = Op {
    child: "init",
    peer: "init",
    peer_in_full: "the container's init",
    after_go: "sets up the container",
    at_ready: "init: closing the pipe to signal completion",
    cloned: "create:cloned",
    in_cgroup: "create:init-in-cgroup",
    go_sent: "create:go-sent",
    ready_received: "create:ready-received",
};

pub const EXEC: Op = Op {
    child: "process",
    peer: "the exec'd process",
    peer_in_full: "the exec'd process",
    after_go: "joins the container",
    at_ready: "setns_init: about to exec",
    cloned: "exec:cloned",
    in_cgroup: "exec:in-cgroup",
    go_sent: "exec:go-sent",
    ready_received: "exec:ready-received",
};
