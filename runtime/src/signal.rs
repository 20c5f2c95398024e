//! Signal names and numbers as `kill` accepts them: "9", "KILL", "SIGKILL", "sigkill",
//! "SIGRTMIN+3", and 0 (no signal: `kill ID 0` checks that the process exists, as with
//! kill(1) and runc); and a signal to every process of a cgroup (`kill --all`, `delete`, a
//! failed create).

use std::str::FromStr;

pub fn parse(s: &str) -> Result<i32, String> {
    let bad = || format!("unknown signal {s:?}");
    if let Ok(n) = s.parse::<i32>() {
        let max = libc::SIGRTMAX();
        return if (0..=max).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let off: i32 =
            if rest.is_empty() { 0 } else { rest.strip_prefix('+').and_then(|r| r.parse().ok()).ok_or_else(bad)? };
        return if min + off <= max { Ok(min + off) } else { Err(bad()) };
    }
    nix::sys::signal::Signal::from_str(&name).map(|s| s as i32).map_err(|_| bad())
}

/// Signals every process in the cgroup. The cgroup is frozen meanwhile (as runc does), so
/// a process that forks cannot escape between reading the pid list and signalling it.
pub(crate) fn kill_cgroup(cg: &dyn crate::cgroups::Manager, sig: i32) {
    // An empty cgroup has nothing to freeze or signal: the usual case in `delete` once a
    // container with its own pid namespace has exited (the kernel killed the rest with its
    // init). A v1 freeze and thaw costs far more than the read: each flips the freezer's
    // static key, which patches the kernel's text on every CPU. Anyone who adds a process
    // after this read could as well have added it after a freeze's read of the list.
    if cg.pids().is_ok_and(|p| p.is_empty()) {
        return;
    }
    let was_frozen = cg.is_frozen().unwrap_or(false);
    let froze = !was_frozen && cg.set_frozen(true).is_ok();
    if let Ok(pids) = cg.pids() {
        for pid in pids {
            let _ = crate::sys::kill_pid(pid, sig);
        }
    }
    // A paused container that is SIGKILLed is thawed too: on cgroup v1 frozen tasks only
    // act on the signal once they run again.
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cg.set_frozen(false);
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("KILL"), Ok(9));
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("hup"), Ok(1));
        assert!(parse("FOO").is_err());
        assert!(parse("999").is_err());
        assert_eq!(parse("0"), Ok(0));
        assert!(parse("-1").is_err());
        assert!(parse("SIGRTMIN+1").is_ok());
    }
}

/// What killed a process, in Go's words ("bad system call" for SIGSYS), followed by the
/// signal's name: runc reports a hook's death this way and scripts grep for the words.
pub fn describe(sig: i32) -> String {
    const GO_TEXT: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    let text = usize::try_from(sig - 1)
        .ok()
        .and_then(|i| GO_TEXT.get(i))
        .map_or_else(|| format!("signal {sig}"), |t| t.to_string());
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => format!("{text} ({})", s.as_str()),
        Err(_) => text,
    }
}

#[cfg(test)]
mod describe_tests {
    #[test]
    fn go_words_and_name() {
        assert_eq!(super::describe(libc::SIGSYS), "bad system call (SIGSYS)");
        assert_eq!(super::describe(libc::SIGKILL), "killed (SIGKILL)");
        assert_eq!(super::describe(40), "signal 40");
    }
}
