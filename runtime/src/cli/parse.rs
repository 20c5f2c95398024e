//! From normalized arguments to a [`Cli`].
//!
//! clap's derive builds the whole command tree before it parses: every subcommand with
//! every argument, the global flags copied into each. For `berth run` that was a fifth of
//! the process's page faults (~90 of its heap and stack pages) and ~0.2 ms. The commands a
//! container's life goes through are parsed first with a command that holds only the
//! global flags and that one subcommand, built from the same definitions; the result of
//! that parse is what the whole tree would give. Anything it does not accept (an error,
//! `--help`, another command) goes to the whole tree, which decides and words the answer.

use std::ffi::OsString;

use clap::{Args, FromArgMatches, Parser};

use super::{exec::ExecArgs, Cli, CreateArgs, DeleteArgs, Globals, IdArgs, KillArgs, RunArgs, GLOBAL_VALUE_FLAGS};

pub(super) fn parse(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
    match narrowed(&argv) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(argv),
    }
}

/// The parse with only the named subcommand, when it accepts the arguments.
fn narrowed(argv: &[OsString]) -> Option<Cli> {
    let mut matches = command_for(subcommand_name(argv)?)?.try_get_matches_from(argv).ok()?;
    Cli::from_arg_matches_mut(&mut matches).ok()
}

/// The first argument that is neither a flag nor a global flag's value. A wrong guess
/// costs only speed: the narrowed command then refuses the arguments.
fn subcommand_name(argv: &[OsString]) -> Option<&str> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_str()?;
        if a == "--" {
            return None;
        }
        if !a.starts_with('-') {
            return Some(a);
        }
        if GLOBAL_VALUE_FLAGS.contains(&a) {
            args.next();
        }
    }
    None
}

/// The global flags and one subcommand, as `Cli`'s derive defines them. The about texts
/// are left out: help is the whole tree's to print.
fn command_for(name: &str) -> Option<clap::Command> {
    let sub = match name {
        "create" => CreateArgs::augment_args(clap::Command::new("create")),
        "run" => RunArgs::augment_args(clap::Command::new("run")),
        "start" => IdArgs::augment_args(clap::Command::new("start")),
        "state" => IdArgs::augment_args(clap::Command::new("state")),
        "kill" => KillArgs::augment_args(clap::Command::new("kill")),
        "delete" => DeleteArgs::augment_args(clap::Command::new("delete")),
        "exec" => ExecArgs::augment_args(clap::Command::new("exec")),
        _ => return None,
    };
    Some(Globals::augment_args(clap::Command::new("berth").disable_version_flag(true)).subcommand(sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(line: &str) -> Vec<OsString> {
        super::super::normalize(line.split(' ').map(OsString::from))
    }

    #[test]
    fn each_narrowed_command_is_consistent() {
        for name in ["create", "run", "start", "state", "kill", "delete", "exec"] {
            command_for(name).expect("a narrowed command").debug_assert();
        }
    }

    #[test]
    fn narrowed_parse_gives_what_the_whole_tree_gives() {
        let lines = [
            "berth run id",
            "berth --root /r --log /l --log-format json --systemd-cgroup run -d --keep -b /b --pid-file /p id",
            "berth run --root=/r --bundle=/b --console-socket /s --no-pivot --no-new-keyring --preserve-fds 2 id",
            "berth --debug create --bundle /b --pid-file /p id",
            "berth create id --root /r",
            "berth --rootless true --criu /c start id",
            "berth state id",
            "berth kill id",
            "berth kill --all id 9",
            "berth kill -a id SIGKILL",
            "berth delete id",
            "berth delete -f id",
            "berth delete --force id --debug",
            "berth exec -t -d --console-socket /s --pid-file /p --cwd /w -e A=1 -e B=2 -u 1:2 --cap CAP_KILL id sh -c true",
            "berth exec --process /p.json --detach id",
            "berth -root /r -log-format=json run -bundle /b id",
        ];
        for line in lines {
            let argv = args(line);
            let fast = narrowed(&argv).unwrap_or_else(|| panic!("not narrowed: {line}"));
            let whole = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line}");
        }
    }

    #[test]
    fn arguments_the_narrowed_command_refuses_go_to_the_whole_tree() {
        let lines = [
            "berth run",
            "berth run --help",
            "berth --help",
            "berth --version",
            "berth run -x id",
            "berth kill a b c d",
            "berth --root run list",
            "berth --rootless run frob",
            "berth list",
            "berth frob x",
            "berth start a b",
            "berth -- run id",
        ];
        for line in lines {
            assert!(narrowed(&args(line)).is_none(), "narrowed: {line}");
        }
        // The whole tree still answers them as before.
        assert!(matches!(
            parse(args("berth --root run list")),
            Ok(Cli { command: Some(super::super::Command::List { .. }), .. })
        ));
        let help = parse(args("berth run --help")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(help.contains("Create and start a container"), "{help}");
        assert!(Cli::command().get_subcommands().any(|c| c.get_name() == "ps"));
    }
}
