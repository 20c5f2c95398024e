//! What the failpoint builds of berth and of its shim share: how a selection is read
//! (`<step>`, `<step> stop` or `<step> pause`) and what the process does at the selected
//! step. Each binary keeps its own list of steps and the variables that select one.

/// What happens at the selected step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Die as a `kill -9` from outside would: no destructor, no guard, no cleanup.
    Kill,
    /// Stop (SIGSTOP), so that a test can act on the system first (kill a daemon, say);
    /// resumed with SIGCONT, die as with `Kill`.
    Stop,
    /// Stop, and carry on when resumed: a test puts a race's other side exactly here.
    Pause,
}

/// A selection's step and mode.
pub fn parse(selected: &str) -> (&str, Mode) {
    match selected.trim().split_once(char::is_whitespace) {
        Some((step, mode)) => (
            step,
            match mode.trim() {
                "stop" => Mode::Stop,
                "pause" => Mode::Pause,
                _ => Mode::Kill,
            },
        ),
        None => (selected.trim(), Mode::Kill),
    }
}

/// Acts out `mode` at the selected step (returns only for `Pause`).
pub fn act(mode: Mode) {
    use nix::sys::signal::{raise, Signal};
    if mode != Mode::Kill {
        let _ = raise(Signal::SIGSTOP);
    }
    if mode != Mode::Pause {
        let _ = raise(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Mode};

    #[test]
    fn a_selection_names_a_step_and_may_say_stop_or_pause() {
        assert_eq!(parse("create:registered"), ("create:registered", Mode::Kill));
        assert_eq!(parse("create:registered stop\n"), ("create:registered", Mode::Stop));
        assert_eq!(parse(" exec:started  stop "), ("exec:started", Mode::Stop));
        assert_eq!(parse("delete:init-pinned pause"), ("delete:init-pinned", Mode::Pause));
        assert_eq!(parse(""), ("", Mode::Kill));
    }
}
