//! `ps`: the processes in the container's cgroup, as a pid list (JSON, what containerd and
//! Docker parse) or as the host's `ps` table cut down to the container's lines (runc's way).

use std::process::Command;

use crate::error::{Error, Result};
use crate::state::Store;

/// Every pid in the container's cgroup (and its sub-cgroups). A stopped container whose
/// cgroup is gone has none.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let rec = store.load(id)?;
    Ok(rec.cgroup_manager().pids()?)
}

/// The host's `ps <args>` (default `-ef`): its header and the lines of the container's
/// processes.
pub fn table(store: &Store, id: &str, args: &[String]) -> Result<String> {
    let pids = pids(store, id)?;
    let default = ["-ef".to_string()];
    let args = if args.is_empty() { &default[..] } else { args };
    let out = Command::new("ps").args(args).output().map_err(|e| Error::io("running ps", e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Usage(format!("ps {}: {}: {}", args.join(" "), out.status, err.trim())));
    }
    filter(&String::from_utf8_lossy(&out.stdout), &pids)
}

/// Keeps the header and the lines whose PID column is one of `pids`.
pub fn filter(ps_output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = ps_output.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::Usage("couldn't find PID field in ps output".into()))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_lines() {
        let ps = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh\nroot 43 42 sleep\n";
        assert_eq!(filter(ps, &[42, 43]).expect("filter"), "UID PID PPID CMD\nroot 42 1 sh\nroot 43 42 sleep\n");
    }

    #[test]
    fn no_pid_column_is_an_error() {
        let e = filter("COMMAND\nsh\n", &[1]).expect_err("no PID column");
        assert_eq!(e.to_string(), "couldn't find PID field in ps output");
    }
}
