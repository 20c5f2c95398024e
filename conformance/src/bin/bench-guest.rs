//! `make bench`, the systemd host part: `bench` (src/bin/bench.rs) run inside the Debian 13
//! guest (systemd 257 as PID 1, pure cgroup v2; docs/production-guest.md) with trixie's runc
//! and crun, twice: with each runtime's cgroupfs driver, and with `--systemd-cgroup`, where
//! every container is a transient scope made over D-Bus. The guest is emulated (TCG): only
//! the ratios between runtimes of one run mean anything, not the times.
//!
//! Each pass runs twice: as a host runs it, and under `setarch -R` (no address-space
//! randomisation for bench and every runtime it starts). QEMU 7.2's TCG keys the code it
//! has translated by virtual address, so code mapped at a new random address is translated
//! again in every process, which on hardware costs nothing: berth, one large static PIE,
//! pays that for each of its two images, crun for its loader and libraries
//! (docs/performance.md). The second pass compares the runtimes' own work.
//!
//! `BERTH`: the static release berth (default: the workspace's newest build); `bench` is
//! taken from beside this binary. `BENCH_GUEST_N` iterations per scenario (default 20).

use std::path::PathBuf;
use std::time::Duration;

use conformance::systemd_guest::{ensure_image, BootOptions, Guest, Suite, SHARE_MOUNT};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_GUEST_N").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let berth = conformance::util::workspace_binary("berth", "BERTH");
    let beside = |name: &str| {
        std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join(name)))
            .filter(|p| p.is_file())
            .ok_or_else(|| anyhow::anyhow!("no `{name}` beside this binary (cargo build --release -p conformance)"))
    };
    // bench-floor too: `bench` takes it from beside itself for the floor's rows.
    let (bench, floor) = (beside("bench")?, beside("bench-floor")?);
    let share = tempfile::Builder::new().prefix("berth-bench-guest-").tempdir()?;
    for (from, name) in [(&berth, "berth"), (&bench, "bench"), (&floor, "bench-floor")] {
        std::fs::copy(from, share.path().join(name)).map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
    }
    let img = ensure_image(Suite::Trixie)?;
    let opts = BootOptions { share: Some(PathBuf::from(share.path())), ..BootOptions::default() };
    let mut guest = Guest::boot(&img, &opts)?;
    println!("== trixie guest (systemd 257, cgroup v2, emulated): ready in {:.1?}", guest.boot_to_ready);
    let versions = guest.run("runc --version | head -1; crun --version | head -1", Duration::from_secs(60))?;
    print!("{}", versions.stdout);
    // From the guest's own disk, as runc and crun are: executing from the 9p share re-reads
    // the binary over virtio at every exec.
    let o = guest.run(
        &format!("install -m 0755 {SHARE_MOUNT}/berth {SHARE_MOUNT}/bench {SHARE_MOUNT}/bench-floor /usr/local/bin/"),
        Duration::from_secs(120),
    )?;
    if o.code != 0 {
        anyhow::bail!("installing berth in the guest: {}", o.stderr);
    }
    let passes = [
        ("cgroupfs driver", "", ""),
        ("cgroupfs driver, no address randomisation", "", "setarch -R"),
        ("--systemd-cgroup (a transient scope per container)", "--systemd-cgroup", ""),
        ("--systemd-cgroup, no address randomisation", "--systemd-cgroup", "setarch -R"),
    ];
    for (title, global, wrapper) in passes {
        println!("\n== {title}, N = {n}");
        // The bench's temp files on the guest's disk, not the read-only share.
        let o = guest.run(
            &format!(
                "cd /root && TMPDIR=/var/tmp BENCH_N={n} BENCH_GLOBAL_ARGS='{global}' BERTH=/usr/local/bin/berth \
                 RUNC=/usr/sbin/runc CRUN=/usr/bin/crun {wrapper} /usr/local/bin/bench"
            ),
            Duration::from_secs(3600),
        )?;
        print!("{}", o.stdout);
        if o.code != 0 {
            anyhow::bail!("bench in the guest exited {}: {}", o.code, o.stderr);
        }
    }
    guest.shutdown();
    Ok(())
}
