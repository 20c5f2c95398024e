//! The trixie guest's second boot mode: `security=selinux selinux=1 enforcing=0`, Debian's
//! selinux-policy-default, permissive, with the files labelled when the image was built (no
//! relabelling boot). One boot; see docs/production-guest.md. Needs what systemd_guest.rs
//! needs (BERTH: the static release binary, which the boot copies in).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use conformance::systemd_guest::{ensure_image, BootOptions, Guest, Lsm, Suite, SHARE_MOUNT};

/// The booted guest and the share holding berth; dropped together at exit.
struct Fixture {
    guest: Guest,
    _share: tempfile::TempDir,
}

static GUEST: OnceLock<Result<Mutex<Option<Fixture>>, String>> = OnceLock::new();

/// Statics are never dropped: take the guest at exit, which kills qemu.
extern "C" fn stop_at_exit() {
    if let Some(Ok(m)) = GUEST.get() {
        let taken = m.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}

fn boot() -> Result<Fixture, String> {
    let berth = std::env::var_os("BERTH")
        .ok_or("BERTH is not set: run `make conformance`, or set BERTH to the static release binary")?;
    let share = tempfile::Builder::new().prefix("berth-selinux-share-").tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(&berth, share.path().join("berth")).map_err(|e| format!("{berth:?}: {e}"))?;
    let img = ensure_image(Suite::Trixie).map_err(|e| e.to_string())?;
    let opts =
        BootOptions { lsm: Lsm::SelinuxPermissive, share: Some(share.path().to_path_buf()), ..BootOptions::default() };
    let mut guest = Guest::boot(&img, &opts).map_err(|e| e.to_string())?;
    eprintln!("trixie guest (SELinux) ready in {:.1?}: systemd says {:?}", guest.boot_to_ready, guest.system_state);
    // berth, and a busybox root imported into podman as busybox:local (no registry here).
    let setup = guest
        .run(
            &format!(
                "set -e
                install -m 0755 {SHARE_MOUNT}/berth /usr/local/bin/berth
                r=$(mktemp -d); mkdir -p $r/bin $r/dev $r/proc $r/sys $r/tmp $r/etc $r/run
                cp /bin/busybox $r/bin/
                for a in $(busybox --list); do [ $a = busybox ] || ln -s busybox $r/bin/$a; done
                tar -C $r -c . | podman import - busybox:local >/dev/null; rm -rf $r"
            ),
            Duration::from_secs(600),
        )
        .map_err(|e| e.to_string())?;
    if setup.code != 0 {
        return Err(format!("guest setup failed ({}): {}\n{}", setup.code, setup.stdout, setup.stderr));
    }
    Ok(Fixture { guest, _share: share })
}

fn guest() -> MutexGuard<'static, Option<Fixture>> {
    let g = GUEST.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        boot().map(|f| Mutex::new(Some(f)))
    });
    match g {
        Ok(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
        Err(e) => panic!("cannot run the trixie guest with SELinux: {e}"),
    }
}

fn ok(script: &str) -> String {
    let mut g = guest();
    let Some(g) = g.as_mut() else { panic!("the guest is gone") };
    let o = g.guest.run(script, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{script}: {e}"));
    eprintln!("guest$ {script}\n  -> {} stdout={:?} stderr={:?}", o.code, o.stdout, o.stderr);
    assert_eq!(o.code, 0, "{script} failed: {}\n{}", o.stdout, o.stderr);
    o.stdout.trim().to_string()
}

#[test]
fn selinux_is_the_lsm_and_permissive() {
    let state = guest().as_ref().map(|g| g.guest.system_state.clone()).unwrap_or_default();
    let failed = ok("systemctl list-units --failed --no-legend --plain");
    eprintln!("system state {state:?}; failed units: {failed:?}");
    assert!(state == "running" || state == "degraded", "is-system-running: {state:?}; failed: {failed}");
    let lsm = ok("cat /sys/kernel/security/lsm");
    assert!(lsm.split(',').any(|l| l == "selinux"), "{lsm}");
    assert!(!lsm.split(',').any(|l| l == "apparmor"), "security=selinux leaves AppArmor off: {lsm}");
    assert_eq!(ok("cat /sys/fs/selinux/enforce"), "0");
    assert_eq!(ok("getenforce"), "Permissive");
    assert_eq!(ok("sestatus | awk '/Loaded policy name/ {print $4}'"), "default");
}

#[test]
fn files_carry_the_labels_set_at_build() {
    // setfiles ran in the build chroot; mkfs.ext4 -d copied the xattrs into the image.
    assert_eq!(ok("stat -c %C /etc/passwd"), "system_u:object_r:etc_t:s0");
    assert_eq!(ok("stat -c %C /usr/sbin/dockerd"), "system_u:object_r:dockerd_exec_t:s0");
    // systemd ran with the policy loaded: init and the daemons have domains of their own.
    let init = ok("cat /proc/1/attr/current | tr -d '\\0'");
    assert!(init.contains(":init_t:"), "{init}");
}

/// podman 5 on an SELinux host picks an MCS label per container (`container_t` with two
/// categories) and the matching `linux.mountLabel`: with berth as with runc, the container's
/// process runs under that label and the mounts the runtime makes carry it as `context=`.
#[test]
fn podman_labels_apply_on_berth_as_on_runc() {
    let script =
        r#"cat /proc/self/attr/current; echo; grep -E " /dev(/mqueue|/pts)? " /proc/self/mounts | cut -d" " -f2,4"#;
    let mut seen = Vec::new();
    for rt in ["runc", "/usr/local/bin/berth"] {
        let out = ok(&format!("podman run --rm --runtime {rt} --network none busybox:local sh -c '{script}'"));
        let mut lines = out.lines().map(|l| l.trim_end_matches('\0')).filter(|l| !l.is_empty());
        let label = lines.next().unwrap_or_default().to_string();
        let level = label
            .strip_prefix("system_u:system_r:container_t:")
            .unwrap_or_else(|| panic!("{rt}: process label {label:?}"));
        assert!(level.starts_with("s0:c") && level.contains(",c"), "{rt}: not an MCS pair: {label}");
        let want = format!("context=\"system_u:object_r:container_file_t:{level}\"");
        let mounts: Vec<String> = lines.map(str::to_string).collect();
        assert_eq!(mounts.len(), 3, "{rt}: {out}");
        // runc labels the tmpfs on /dev and devpts; mqueue takes no context= (it keeps
        // the policy's label), which the comparison below holds berth to as well.
        for m in mounts.iter().filter(|m| !m.starts_with("/dev/mqueue ")) {
            assert!(m.contains(&want), "{rt}: {m} lacks {want}");
        }
        // The categories differ per container; the rest must be the same.
        seen.push(mounts.iter().map(|m| m.replace(level, "<level>")).collect::<Vec<_>>());
    }
    assert_eq!(seen[0], seen[1], "the mounts podman's label reached differ between runc and berth");
}
