//! The trixie guest's second boot mode: `security=selinux selinux=1 enforcing=0`, Debian's
//! selinux-policy-default, permissive, with the files labelled when the image was built (no
//! relabelling boot). One boot; see docs/production-guest.md. Needs what systemd_guest.rs
//! needs, except berth.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use conformance::systemd_guest::{ensure_image, BootOptions, Guest, Lsm};

static GUEST: OnceLock<Result<Mutex<Option<Guest>>, String>> = OnceLock::new();

/// Statics are never dropped: take the guest at exit, which kills qemu.
extern "C" fn stop_at_exit() {
    if let Some(Ok(m)) = GUEST.get() {
        let taken = m.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}

fn guest() -> MutexGuard<'static, Option<Guest>> {
    let g = GUEST.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        let img = ensure_image().map_err(|e| e.to_string())?;
        let opts = BootOptions { lsm: Lsm::SelinuxPermissive, ..BootOptions::default() };
        let g = Guest::boot(&img, &opts).map_err(|e| e.to_string())?;
        eprintln!("trixie guest (SELinux) ready in {:.1?}: systemd says {:?}", g.boot_to_ready, g.system_state);
        Ok(Mutex::new(Some(g)))
    });
    match g {
        Ok(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
        Err(e) => panic!("cannot run the trixie guest with SELinux: {e}"),
    }
}

fn ok(script: &str) -> String {
    let mut g = guest();
    let Some(g) = g.as_mut() else { panic!("the guest is gone") };
    let o = g.run(script, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{script}: {e}"));
    eprintln!("guest$ {script}\n  -> {} stdout={:?} stderr={:?}", o.code, o.stdout, o.stderr);
    assert_eq!(o.code, 0, "{script} failed: {}\n{}", o.stdout, o.stderr);
    o.stdout.trim().to_string()
}

#[test]
fn selinux_is_the_lsm_and_permissive() {
    let state = guest().as_ref().map(|g| g.system_state.clone()).unwrap_or_default();
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
