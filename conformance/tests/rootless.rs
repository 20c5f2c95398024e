//! berth as an unprivileged user (issue 12, part 1), side by side with runc. The tests run
//! as root and drop to the test user (`berthrl`, made with `useradd -m` when missing) for
//! every runtime call through `setpriv`, with a clean environment whose XDG_RUNTIME_DIR is a
//! directory of that user under the case's dir. Configs come from `berth spec --rootless`
//! run as that user (root inside is the user). This host is cgroup v1 hybrid: no cgroup is
//! writable for the user, so rootless containers run without cgroups.

use conformance::util::sha256_file;
use conformance::{each_runtime, Case, Runtime};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use conformance::test_user::{self, owned_dir as user_dir};

fn user() -> (u32, u32) {
    test_user::ids()
}

/// The wrapper that runs `bin` as the test user: setpriv drops root (and with it every
/// capability), env -i leaves only what a login would give.
fn wrapper(dir: &Path, bin: &Path, xdg: Option<&Path>) -> PathBuf {
    let w = dir.join(if xdg.is_some() { "as-user" } else { "as-user-no-xdg" });
    let home = PathBuf::from(format!("/home/{}", test_user::NAME));
    let body =
        format!("#!/bin/sh\nexec setpriv {} {} \"$@\"\n", test_user::setpriv_args(&home, xdg).join(" "), bin.display());
    write_script(&w, &body);
    w
}

/// Writes an executable script.
fn write_script(w: &Path, body: &str) {
    fs::write(w, body).expect("write wrapper");
    fs::set_permissions(w, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    // Another test thread may fork while the file is open for writing here; until that
    // child has exec'd, running the file fails with ETXTBSY. Wait for that to pass.
    for _ in 0..200 {
        match Command::new(w).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => break,
        }
    }
}

/// Turns `c` into a rootless case: its runtime runs as the test user with a state root of
/// that user, and its config is `berth spec --rootless` as that user wrote it, with the
/// test's own adjustments (no terminal, the test id in the environment).
fn make_rootless(c: &mut Case) {
    let real = c.rt.bin.clone();
    let xdg = user_dir(&c.dir.join("xdg"));
    let root = user_dir(&c.dir.join("rootless-root"));
    c.rt = Runtime::with_binary(&wrapper(&c.dir, &real, Some(&xdg)), &root);
    c.bundle.config = rootless_spec(c);
    c.bundle.config["process"]["terminal"] = false.into();
    c.bundle.config["process"]["env"].as_array_mut().expect("env").push(json!(format!("BERTH_TEST_ID={}", c.id)));
    // The rootfs and bundle are root's: readable and traversable by everyone.
    for d in [&c.dir, &c.bundle.dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// `berth spec --rootless` run as the test user, whatever runtime the case tests: the
/// config under test is always the one berth generates.
fn rootless_spec(c: &Case) -> Value {
    let berth = conformance::runtime::runtime_binary();
    let d = user_dir(&c.dir.join("spec"));
    let out = conformance::runtime::Invocation::new(&wrapper(&c.dir, &berth, None))
        .args(["spec", "--rootless"])
        .cwd(&d)
        .run();
    out.expect_ok("berth spec --rootless as the test user");
    let v: Value = serde_json::from_slice(&fs::read(d.join("config.json")).expect("config.json")).expect("json");
    fs::remove_dir_all(&d).expect("rm spec dir");
    v
}

fn berth_rootless_case(name: &str) -> Case {
    let mut c = Case::new(name);
    make_rootless(&mut c);
    c
}

/// Everything the user's runtime left in its state root. Not crun's `.empty-directory`: crun
/// 1.28 keeps that one directory (mode 0555, what it binds over masked paths) in its root
/// for all its containers, as /run/crun holds it for root's; it is no container's state.
fn state_entries(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".empty-directory")
                .collect()
        })
        .unwrap_or_default()
}

// 1. State root ---------------------------------------------------------------

#[test]
fn rootless_state_root_defaults_to_xdg_runtime_dir() {
    each_runtime("rl_xdg_root", |c, rt| {
        let real = c.rt.bin.clone();
        let xdg = user_dir(&c.dir.join("xdg"));
        make_rootless(c);
        c.bundle.set_args(&["sleep", "100"]);
        c.write();
        // No --root: the runtime picks its default.
        let w = wrapper(&c.dir, &real, Some(&xdg));
        let inv = || conformance::runtime::Invocation::new(&w);
        inv().args(["create", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).stdio_to(&c.stdio).run().expect_ok("create");
        // Each runtime's own directory: crun's is $XDG_RUNTIME_DIR/crun, made 0700 (without
        // the sticky bit runc and berth set).
        let (name, want) = match rt {
            "berth" => ("berth", 0o1700),
            "crun" => ("crun", 0o700),
            _ => ("runc", 0o1700),
        };
        let root = xdg.join(name);
        assert_eq!(state_entries(&root), vec![c.id.clone()], "{rt}: the state is not in $XDG_RUNTIME_DIR/{name}");
        let mode = fs::metadata(&root).expect("stat root").permissions().mode() & 0o7777;
        assert_eq!(mode, want, "{rt}: $XDG_RUNTIME_DIR/{name} mode {mode:o}");
        let list = inv().args(["list", "-q"]).run();
        assert_eq!(list.stdout.trim(), c.id, "{rt}: list as the user\n{list}");
        inv().args(["delete", "--force"]).arg(&c.id).run().expect_ok("delete --force");
        assert!(state_entries(&root).is_empty(), "{rt}: state left in {}", root.display());
    });
}

#[test]
fn rootless_without_xdg_runtime_dir_fails_naming_it() {
    each_runtime("rl_no_xdg", |c, rt| {
        make_rootless(c);
        let real = if rt == "berth" { conformance::runtime::runtime_binary() } else { "/usr/sbin/runc".into() };
        let out = conformance::runtime::Invocation::new(&wrapper(&c.dir, &real, None)).args(["list"]).run();
        out.expect_fail("list without XDG_RUNTIME_DIR");
        if rt == "berth" {
            assert!(out.stderr.contains("XDG_RUNTIME_DIR"), "berth should name XDG_RUNTIME_DIR:\n{out}");
            assert_eq!(out.stderr_lines().len(), 1, "{out}");
        } else {
            // runc falls back to /run/runc, which is root's.
            assert!(out.stderr.contains("/run/runc"), "{out}");
        }
        // A runtime dir the user cannot write.
        let bad = c.dir.join("not-the-users");
        fs::create_dir_all(&bad).expect("mkdir");
        let out = conformance::runtime::Invocation::new(&wrapper(&c.dir, &real, Some(&bad))).args(["list"]).run();
        out.expect_fail("list with an unwritable XDG_RUNTIME_DIR");
        assert!(out.stderr.contains("XDG_RUNTIME_DIR"), "{rt} should name XDG_RUNTIME_DIR:\n{out}");
        assert!(state_entries(&bad).is_empty());
    });
}

// 2. Detection ---------------------------------------------------------------------

#[test]
fn rootless_flag_takes_true_false_auto() {
    let mut c = berth_rootless_case("rl_flag");
    c.bundle.set_args(&["true"]);
    c.write();
    let run = |flag: &str| {
        c.rt.cmd().arg(format!("--rootless={flag}")).args(["run", "--bundle"]).arg(&c.bundle.dir).arg(&c.id).run()
    };
    let out = run("maybe");
    out.expect_fail("--rootless=maybe");
    assert!(out.stderr.contains("--rootless"), "{out}");
    run("auto").expect_ok("--rootless=auto as the user");
    run("true").expect_ok("--rootless=true as the user");
    // Not rootless: berth then wants its cgroups, which only root may make here.
    let out = run("false");
    out.expect_fail("--rootless=false as the user");
    assert!(out.stderr.contains("cgroup") || out.stderr.contains("ermission"), "{out}");
    c.assert_no_leaks("after the failed run");
}

/// podman's case: uid 0 in a user namespace that maps only the user. berth detects
/// rootless there too: a memory limit is refused by name instead of failing on the
/// cgroup, and a container without limits runs (its root is the namespace's root).
#[test]
fn rootless_detected_as_uid_0_in_a_partial_user_namespace() {
    let mut c = berth_rootless_case("rl_userns");
    c.bundle.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    c.bundle.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    c.bundle.set_sh("id -u; cat /proc/self/uid_map");
    c.write();
    let real = conformance::runtime::runtime_binary();
    let xdg = c.dir.join("xdg");
    let w = wrapper(&c.dir, Path::new("/usr/bin/unshare"), Some(&xdg));
    let run = |c: &Case| {
        conformance::runtime::Invocation::new(&w)
            .args(["--user", "--map-root-user", "--"])
            .arg(&real)
            .arg("--root")
            .arg(&c.rt.root)
            .args(["run", "--bundle"])
            .arg(&c.bundle.dir)
            .arg(&c.id)
            .run()
    };
    let out = run(&c);
    out.expect_ok("run as uid 0 of a user namespace");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("0"), "{out}");
    let map: Vec<&str> = lines.get(1).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    // The map as the container sees it: root inside is root of the namespace berth ran
    // in, which is the user on the host.
    assert_eq!(map, ["0", "0", "1"], "{out}");
    c.bundle.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    c.write();
    let out = run(&c);
    out.expect_fail("a memory limit without a writable cgroup");
    assert!(out.stderr.contains("linux.resources.memory.limit"), "{out}");
    c.assert_no_leaks("after the refused run");
}

// 3. The rootless config runs as is ---------------------------------------------------

#[test]
fn rootless_spec_config_runs_as_root_mapped_to_the_user() {
    let (uid, gid) = user();
    each_runtime("rl_run", |c, rt| {
        make_rootless(c);
        c.bundle
            .set_sh("id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; grep ' /sys' /proc/mounts");
        let out = c.run();
        out.expect_ok(&format!("{rt}: run of the spec --rootless config"));
        assert!(out.stdout.starts_with("uid=0(root) gid=0(root)"), "{rt}: {out}");
        let maps: Vec<Vec<&str>> = out.stdout.lines().skip(1).take(2).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(maps, [["0", &uid.to_string(), "1"], ["0", &gid.to_string(), "1"]], "{rt}: {out}");
        assert!(out.stdout.contains("\ndeny\n"), "{rt}: setgroups must be denied\n{out}");
        let sys = out.stdout.lines().find(|l| l.contains(" /sys ")).unwrap_or_default();
        assert!(sys.contains(" ro,"), "{rt}: /sys is a read-only bind: {sys:?}");
        // The rbind brings the host's cgroupfs along. berth makes all of it read-only
        // (CVE-2023-25809); runc 1.1.5 leaves the submounts of /sys read-write.
        if rt == "berth" {
            let rw: Vec<&str> = out.stdout.lines().filter(|l| l.contains(" /sys") && !l.contains(" ro,")).collect();
            assert!(rw.is_empty(), "writable mounts under /sys:\n{}", rw.join("\n"));
        }
        assert!(conformance::leak::cgroup_dirs_containing(&c.id).is_empty(), "{rt}: made a cgroup");
    });
}

// Found by runc 1.3's timens.bats run rootless: berth failed with EACCES opening
// timens_offsets, which /proc gave to the host's root while berth was not dumpable.
#[test]
fn rootless_time_offsets_apply_in_a_new_time_namespace() {
    // runc 1.1 has no time namespaces; crun 1.8 (this host's) none either.
    conformance::each_runtime_but(&["runc<1.3", "crun"], "rl_timens", |c, rt| {
        make_rootless(c);
        c.bundle.config["linux"]["namespaces"].as_array_mut().expect("namespaces").push(json!({"type": "time"}));
        c.bundle.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 7881, "nanosecs": 2718281}});
        c.bundle.set_sh("cat /proc/self/timens_offsets");
        let out = c.run();
        out.expect_ok(&format!("{rt}: run with time offsets"));
        let monotonic = out.stdout.lines().find(|l| l.starts_with("monotonic")).unwrap_or_default();
        assert_eq!(monotonic.split_whitespace().collect::<Vec<_>>(), ["monotonic", "7881", "2718281"], "{rt}: {out}");
    });
}

/// The user's first subordinate range in /etc/subuid or /etc/subgid: (start, count).
fn sub_range(file: &str) -> (u32, u32) {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(test_user::NAME)).then(|| {
                let start = f.next().and_then(|v| v.parse().ok());
                let count = f.next().and_then(|v| v.parse().ok());
                start.zip(count)
            })?
        })
        .unwrap_or_else(|| panic!("no range for {} in {file}", test_user::NAME))
}

#[test]
fn rootless_maps_with_subordinate_ids_go_through_newuidmap() {
    // Root inside is the user, ids 1.. are the user's subordinate range: more than one id,
    // which only the setuid helpers may map for an unprivileged user.
    let (uid, gid) = user();
    let (su, sun) = sub_range("/etc/subuid");
    let (sg, sgn) = sub_range("/etc/subgid");
    each_runtime("rl_subids", |c, rt| {
        make_rootless(c);
        c.bundle.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": su, "size": sun}]);
        c.bundle.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": gid, "size": 1}, {"containerID": 1, "hostID": sg, "size": sgn}]);
        c.bundle.config["process"]["capabilities"] =
            json!({"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]});
        c.bundle.add_mount(
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
        );
        let out = c.run_sh(
            "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u:%g /tmp/f",
        );
        out.expect_ok(&format!("{rt}: a map of the user's subordinate ids"));
        let lines: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
        let (u, g, su_s, sun_s, sg_s, sgn_s) =
            (uid.to_string(), gid.to_string(), su.to_string(), sun.to_string(), sg.to_string(), sgn.to_string());
        assert_eq!(
            lines,
            [
                vec!["0", u.as_str(), "1"],
                vec!["1", su_s.as_str(), sun_s.as_str()],
                vec!["0", g.as_str(), "1"],
                vec!["1", sg_s.as_str(), sgn_s.as_str()],
                vec!["1000:1000"],
            ],
            "{rt}: {out}"
        );
        // A range that is not the user's is refused by the helper, naming the field.
        c.bundle.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": 1, "size": 10}]);
        let out = c.run();
        out.expect_fail(&format!("{rt}: host ids that are not the user's"));
        if rt == "berth" {
            assert!(out.stderr.contains("linux.uidMappings") && out.stderr.contains("newuidmap"), "{out}");
        }
        c.assert_no_leaks("after the refused map");
    });
}

// Found by runc 1.3's dev.bats run rootless ("redundant default /dev/ptmx"): berth bound
// the host's ptmx at /dev/ptmx and could not replace the bind with the pts/ptmx link.
#[test]
fn rootless_dev_ptmx_in_linux_devices_is_still_the_link_to_pts_ptmx() {
    each_runtime("rl_ptmx", |c, rt| {
        make_rootless(c);
        let ptmx = json!({"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2});
        c.bundle.config["linux"]["devices"] = json!([ptmx]);
        c.bundle.set_sh("readlink /dev/ptmx; stat -L -c '%t:%T' /dev/ptmx");
        let out = c.run();
        out.expect_ok(&format!("{rt}: run with /dev/ptmx among linux.devices"));
        assert_eq!(out.stdout, "pts/ptmx\n5:2\n", "{rt}: {out}");
    });
}

#[test]
fn rootless_default_devices_and_sysfs_fall_back_to_binds() {
    // The root config's devices (mknod) and sysfs (needs an owned network namespace)
    // with the rootless namespaces: devices are bound from the host, /sys is bound.
    each_runtime("rl_dev", |c, rt| {
        make_rootless(c);
        c.bundle.config["mounts"] = conformance::default_spec()["mounts"].clone();
        c.bundle.remove_mount("/sys/fs/cgroup");
        c.bundle.config["mounts"].as_array_mut().expect("mounts").iter_mut().for_each(|m| {
            if m["destination"] == "/dev/pts" {
                m["options"] = json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]);
            }
        });
        c.bundle.set_sh("echo hi > /dev/null && head -c 4 /dev/zero | wc -c && ls /sys/kernel >/dev/null && echo ok");
        let out = c.run();
        if rt == "runc" {
            // runc 1.1.5 has no sysfs fallback: a rootless config must bind /sys itself.
            out.expect_fail("runc with sysfs and no network namespace");
            assert!(out.stderr.contains("sysfs"), "{out}");
            return;
        }
        out.expect_ok(&format!("{rt}: run with /dev nodes and sysfs"));
        assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["4", "ok"], "{rt}: {out}");
    });
}

#[test]
fn rootless_cgroup_mount_without_a_cgroup_shows_the_users_own_read_only() {
    // podman's rootless configs keep the `type: "cgroup"` mount. With no cgroup the user may
    // write (every v1 host), the init stays in the runtime's own cgroup, and the mount
    // shows that cgroup in each hierarchy, read-only.
    each_runtime("rl_cgmount", |c, rt| {
        make_rootless(c);
        c.bundle.add_mount(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
        c.bundle.set_sh(
            "for l in $(cat /proc/self/cgroup); do c=${l#*:}; c=${c%%:*}; [ -n \"$c\" ] || continue; \
             d=/sys/fs/cgroup/${c#name=}; [ -d $d ] && echo dir $c; touch $d/x 2>/dev/null || echo ro $c; done",
        );
        let out = c.run();
        out.expect_ok(&format!("{rt}: run with a cgroup mount, rootless"));
        let own = fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let v1: Vec<&str> = own.lines().filter_map(|l| l.split(':').nth(1)).filter(|c| !c.is_empty()).collect();
        assert!(!v1.is_empty(), "this host has v1 hierarchies");
        for c in v1 {
            // A hierarchy of several controllers is one line ("cpu,cpuacct"): its directory
            // is that name.
            assert!(out.stdout.contains(&format!("dir {c}\n")), "{rt}: {c} not mounted\n{out}");
            assert!(out.stdout.contains(&format!("ro {c}\n")), "{rt}: {c} writable\n{out}");
        }
        assert!(conformance::leak::cgroup_dirs_containing(&c.id).is_empty(), "{rt}: made a cgroup");
    });
}

/// A cgroupsPath is a request for that cgroup: rootless, where the user may not make it,
/// the container is refused, naming the field, rather than run without it (runc's cgroup
/// managers ignore the permission error only when no path was given).
#[test]
fn rootless_cgroups_path_without_permission_fails_naming_it() {
    each_runtime("rl_cgpath", |c, rt| {
        make_rootless(c);
        c.bundle.set_args(&["true"]);
        let path = format!("/{}", c.id);
        c.bundle.config["linux"]["cgroupsPath"] = path.clone().into();
        let out = c.run();
        out.expect_fail(&format!("{rt}: a cgroupsPath the user may not make"));
        if rt == "berth" {
            assert!(out.stderr.contains(&format!("linux.cgroupsPath {path:?}")), "{out}");
            assert!(out.stderr.contains("permission denied"), "{out}");
            assert_eq!(out.stderr_lines().len(), 1, "{out}");
        } else {
            assert!(out.stderr.to_lowercase().contains("permission denied"), "{rt}: {out}");
        }
        c.assert_no_leaks("after the refused run");
        assert!(conformance::leak::cgroup_dirs_containing(&c.id).is_empty(), "{rt}: made a cgroup");
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
    });
}

#[test]
fn rootless_limits_without_a_cgroup_fail_naming_linux_resources() {
    each_runtime("rl_limits", |c, rt| {
        make_rootless(c);
        c.bundle.set_args(&["true"]);
        // Device rules alone (every root config has them) are no limit: the run works.
        c.bundle.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
        c.run().expect_ok(&format!("{rt}: run with device rules only"));
        c.bundle.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
        let out = c.run();
        if rt == "crun" {
            // crun 1.28 (the forky guest's) runs the container without the limit it cannot
            // set, silently: exit 0, nothing on stderr. runc and berth refuse it.
            out.expect_ok("crun: a memory limit without a writable cgroup");
        } else {
            out.expect_fail("a memory limit without a writable cgroup");
        }
        if rt == "berth" {
            assert!(out.stderr.contains("linux.resources.memory.limit"), "{out}");
            assert_eq!(out.stderr_lines().len(), 1, "{out}");
        } else if conformance::oracle::is_runc_1_3(rt) {
            // runc 1.3 names no limit. On cgroup v2: "rootless needs no limits + no cgrouppath
            // when no permission is granted for cgroups: mkdir /sys/fs/cgroup/<its cgroup>/<id>:
            // ..."; on a v1 host: "cannot set memory limit: container could not join or create
            // cgroup".
            assert!(
                out.stderr.contains("rootless needs no limits") || out.stderr.contains("cannot set memory limit"),
                "{rt}: {out}"
            );
        } else if rt == "runc" {
            assert!(out.stderr.contains("memory"), "{rt}: {out}");
        }
        c.bundle.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
        let out = c.run();
        if rt == "crun" {
            out.expect_ok("crun: a pids limit without a writable cgroup");
        } else {
            out.expect_fail("a pids limit without a writable cgroup");
        }
        if rt == "berth" {
            assert!(out.stderr.contains("linux.resources.pids.limit"), "{out}");
        }
        c.assert_no_leaks("after the refused runs");
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
    });
}

#[test]
fn rootless_oom_score_adj_goes_down_only_to_what_a_privileged_process_set() {
    // The kernel lets an unprivileged process lower its oom_score_adj down to the value a
    // privileged process last set (this test's, as root); lower takes CAP_SYS_RESOURCE.
    let own: i32 = fs::read_to_string("/proc/self/oom_score_adj").expect("own").trim().parse().expect("number");
    let (raised, allowed) = (own + 300, own + 200);
    each_runtime("rl_oom", |c, rt| {
        let real = c.rt.bin.clone();
        make_rootless(c);
        c.bundle.config["process"]["oomScoreAdj"] = 500.into();
        let out = c.run_sh("cat /proc/self/oom_score_adj");
        out.expect_ok(&format!("{rt}: raising oom_score_adj"));
        assert_eq!(out.stdout.trim(), "500", "{rt}");
        // The runtime raised its own value as the user first (as a containerd shim does,
        // one above dockerd's): a container may still go below that, down to the root's.
        let user_rt = c.rt.clone();
        let raising = c.dir.join("as-user-raised");
        let home = PathBuf::from(format!("/home/{}", test_user::NAME));
        let body = format!(
            "#!/bin/sh\nexec setpriv {} sh -c 'echo {raised} >/proc/self/oom_score_adj && exec \"$0\" \"$@\"' {} \"$@\"\n",
            test_user::setpriv_args(&home, Some(&c.dir.join("xdg"))).join(" "),
            real.display()
        );
        write_script(&raising, &body);
        c.rt = Runtime::with_binary(&raising, &user_rt.root);
        c.bundle.config["process"]["oomScoreAdj"] = allowed.into();
        let out = c.run_sh("cat /proc/self/oom_score_adj");
        out.expect_ok(&format!("{rt}: below the runtime's own value, not below root's"));
        assert_eq!(out.stdout.trim(), allowed.to_string(), "{rt}");
        c.rt = user_rt;
        c.bundle.config["process"]["oomScoreAdj"] = (-500).into();
        let out = c.run();
        out.expect_fail("lowering oom_score_adj as the user");
        if rt == "berth" {
            assert!(out.stderr.contains("process.oomScoreAdj"), "{out}");
        } else if rt == "runc" {
            // runc's init dies on the write and logs why; whether that line reaches stderr
            // before runc gives up on the pipe ("can't get final child's PID from pipe:
            // EOF") is a race in runc 1.3 (seen 1 CI run in 2 in the forky guest).
            assert!(
                out.stderr.contains("oom_score_adj") || out.stderr.contains("final child's PID from pipe"),
                "{rt}: {out}"
            );
        } else {
            assert!(out.stderr.contains("oom_score_adj"), "{rt}: {out}");
        }
        c.assert_no_leaks("after the refused run");
    });
}

// 4. The lifecycle as the user ---------------------------------------------------------

#[test]
fn rootless_lifecycle_create_start_state_list_exec_kill_delete() {
    each_runtime("rl_life", |c, rt| {
        make_rootless(c);
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(&format!("{rt}: create"));
        let st = c.state();
        assert_eq!(st["status"], "created", "{rt}: {st}");
        let pid = st["pid"].as_i64().expect("pid");
        let (uid, _) = user();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("init status");
        let host_uid = conformance::util::status_field(&status, "Uid");
        assert_eq!(host_uid.split_whitespace().next(), Some(&*uid.to_string()), "{rt}: the init runs as the user");
        c.start().expect_ok("start");
        c.wait_status(&c.id, "running");
        let list = c.rt.list(&["-q"]);
        assert_eq!(list.stdout.trim(), c.id, "{rt}: {list}");
        let ex = c.rt.exec(&["exec", &c.id, "id", "-u"]);
        ex.expect_ok("exec");
        assert_eq!(ex.stdout.trim(), "0", "{rt}: {ex}");
        c.rt.kill(&c.id, "KILL").expect_ok("kill");
        c.wait_status(&c.id, "stopped");
        c.rt.delete(&c.id).expect_ok("delete");
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
        assert!(!conformance::util::pid_alive(pid as i32), "{rt}: the init outlived delete");
        c.assert_no_leaks("after delete");
    });
}

// runc 1.3's create.bats "runc create exec", rootless: `exec` reads the created init's
// namespaces through /proc as the user, which /proc refuses for a non-dumpable process.
#[test]
fn rootless_exec_into_a_created_container_runs_in_its_namespaces() {
    each_runtime("rl_crexec", |c, rt| {
        make_rootless(c);
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(&format!("{rt}: create"));
        let pid = c.state()["pid"].as_i64().expect("pid");
        if rt == "crun" {
            // crun 1.28 (the forky guest's) keeps its created init non-dumpable: its exec
            // cannot open the namespaces until `start`, as berth's could not before.
            let ex = c.rt.exec(&["exec", &c.id, "true"]);
            ex.expect_fail("crun: exec into the created container");
            assert!(ex.stderr.contains("Permission denied"), "{rt}: {ex}");
            c.rt.delete_force(&c.id).expect_ok("delete --force");
            c.assert_no_leaks("after delete");
            return;
        }
        let ex = c.rt.exec(&[
            "exec",
            &c.id,
            "sh",
            "-c",
            "id -u; for n in mnt pid user; do readlink /proc/self/ns/$n; done; \
             for f in /proc/1/fd/*; do n=${f##*/}; [ $n -gt 2 ] && echo \"fd $n $(readlink $f)\"; done; true",
        ]);
        ex.expect_ok(&format!("{rt}: exec into the created container"));
        let lines: Vec<&str> = ex.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"0"), "{rt}: root in the container\n{ex}");
        for (i, ns) in ["mnt", "pid", "user"].iter().enumerate() {
            let init = fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("init's namespace");
            assert_eq!(lines.get(i + 1).copied(), init.to_str(), "{rt}: not in the init's {ns} namespace\n{ex}");
        }
        if rt == "berth" {
            // What the waiting init holds beyond stdio is berth's sockets to `start` and to
            // the runtime: nothing that opens a host path (runc's holds its exec.fifo).
            for l in lines.iter().filter(|l| l.starts_with("fd ")) {
                let target = l.split_whitespace().nth(2).unwrap_or("");
                assert!(target.starts_with("socket:"), "{rt}: the created init holds {l}\n{ex}");
            }
        }
        assert_eq!(c.state()["status"], "created", "{rt}: exec started the container");
        c.start().expect_ok(&format!("{rt}: start after the exec"));
        c.wait_status(&c.id, "running");
        let ex = c.rt.exec(&["exec", &c.id, "id", "-u"]);
        ex.expect_ok(&format!("{rt}: exec into the running container"));
        c.rt.delete_force(&c.id).expect_ok("delete --force");
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
        c.assert_no_leaks("after delete");
    });
}

/// A process of the test user's, killed when dropped.
struct UserProcess(std::process::Child);

impl Drop for UserProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// /proc gives a non-dumpable process's files to the host's root: the owner of
// /proc/<pid>/fd tells whether the created init is dumpable.
fn proc_owner(pid: i64) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}/fd")).expect("stat /proc/<pid>/fd").uid()
}

// runc's nsexec.c: the init is made non-dumpable when it joins a namespace by path, where
// a process of that namespace could otherwise reach it before it is in the container.
#[test]
fn rootless_created_init_joining_a_namespace_by_path_stays_non_dumpable() {
    each_runtime("rl_crjoin", |c, rt| {
        make_rootless(c);
        c.bundle.set_args(&["sleep", "1000"]);
        c.create().expect_ok(&format!("{rt}: create"));
        let (uid, _) = user();
        let pid = c.state()["pid"].as_i64().expect("pid");
        // crun 1.28 keeps its created init non-dumpable either way.
        let expected = if rt == "crun" { 0 } else { uid };
        assert_eq!(proc_owner(pid), expected, "{rt}: the created init joining nothing");
        c.rt.delete_force(&c.id).expect_ok("delete --force");

        // A user and an IPC namespace of the user's own, to join by path (setns into an IPC
        // namespace takes CAP_SYS_ADMIN in the joiner's own user namespace too).
        let home = PathBuf::from(format!("/home/{}", test_user::NAME));
        let holder = UserProcess(
            Command::new("setpriv")
                .args(test_user::setpriv_args(&home, None))
                .args(["unshare", "--user", "--map-root-user", "--ipc", "sleep", "1000"])
                .spawn()
                .expect("spawn the namespace's holder"),
        );
        let hpid = holder.0.id();
        let own_ipc = fs::read_link("/proc/self/ns/ipc").expect("own ipc namespace");
        let mut joined = None;
        for _ in 0..500 {
            match fs::read_link(format!("/proc/{hpid}/ns/ipc")) {
                Ok(ns) if ns != own_ipc => {
                    joined = Some(ns);
                    break;
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let joined = joined.expect("the holder's ipc namespace");
        c.bundle.join_namespace("user", &format!("/proc/{hpid}/ns/user"));
        c.bundle.join_namespace("ipc", &format!("/proc/{hpid}/ns/ipc"));
        c.create().expect_ok(&format!("{rt}: create joining a user and an ipc namespace by path"));
        let pid = c.state()["pid"].as_i64().expect("pid");
        assert_eq!(fs::read_link(format!("/proc/{pid}/ns/ipc")).expect("init's ipc"), joined, "{rt}");
        assert_eq!(proc_owner(pid), 0, "{rt}: the created init that joined a namespace is dumpable");
        c.rt.delete_force(&c.id).expect_ok("delete --force");
        drop(holder);
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
        c.assert_no_leaks("after delete");
    });
}

// berth's created init has its seccomp filter already: it calls prctl only where the
// filter certainly lets it through (runc's init loads its filter after the wait).
#[test]
fn rootless_created_init_stays_non_dumpable_where_the_filter_refuses_the_prctl() {
    let mut c = berth_rootless_case("rl_crsecc");
    c.bundle.set_args(&["sleep", "1000"]);
    c.bundle.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": libc::PR_SET_DUMPABLE, "op": "SCMP_CMP_EQ"}]}]
    });
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().expect("pid");
    assert_eq!(proc_owner(pid), 0, "the created init is dumpable");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "running");
    c.rt.delete_force(&c.id).expect_ok("delete --force");
    c.assert_no_leaks("after delete");
}

/// A rootless container whose init has a child: both sleep.
fn start_rootless_sleepers(c: &mut Case) {
    make_rootless(c);
    c.bundle.set_sh("sleep 1000 & sleep 1000");
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    c.wait_status(&c.id, "running");
}

// runc 1.3's create.bats "shared pidns + rootless": with neither a cgroup nor a pid
// namespace of its own, nothing holds the container's processes together; runc warns.
#[test]
fn rootless_without_a_cgroup_or_a_pid_namespace_warns() {
    let mut c = berth_rootless_case("rl_hostpid");
    c.bundle.config["linux"]["namespaces"].as_array_mut().expect("namespaces").retain(|n| n["type"] != "pid");
    // A fresh procfs needs a pid namespace of its own: the host's /proc, bound.
    for m in c.bundle.config["mounts"].as_array_mut().expect("mounts") {
        if m["type"] == "proc" {
            *m = json!({"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind", "nosuid", "nodev", "noexec"]});
        }
    }
    c.bundle.set_args(&["sleep", "1000"]);
    let out = c.create();
    out.expect_ok("create with the host's pid namespace");
    let warned = out.stderr.contains("Such configuration is strongly discouraged");
    let no_cgroup = conformance::leak::cgroup_dirs_containing(&c.id).is_empty();
    assert_eq!(warned, no_cgroup, "warns exactly when the user got no cgroup: {out}");
}

// Found by runc 1.3's exec.bats run rootless: a foreground `exec -t` into a container with
// its own pid namespace hung. Rootless, the exec's first child forks the process into that
// namespace and waits for berth's second `Go`, while berth waited for the terminal the
// process had not made yet.
#[test]
fn rootless_foreground_exec_tty_into_a_container_with_its_own_pid_namespace() {
    let mut c = Case::new("rl_exec_tty");
    start_rootless_sleepers(&mut c);
    let cmd = conformance::console::runtime_cmdline(&c, &["exec", "-t", &c.id, "sh", "-c", "tty; echo in-tty; exit 5"]);
    let out = conformance::console::under_script(&cmd);
    let text = out.stdout.replace(['\r', '\0'], "").replace("^@", "");
    assert_eq!(out.code, 5, "the process's exit code comes back through script: {out}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("/dev/pts/")), "{text:?}");
    assert!(lines.contains(&"in-tty"), "{text:?}");
}

#[test]
fn rootless_kill_all_and_delete_force_leave_nothing() {
    each_runtime("rl_force", |c, rt| {
        start_rootless_sleepers(c);
        let out = c.rt.exec(&["kill", "--all", &c.id, "KILL"]);
        if rt == "runc" && !conformance::oracle::is_runc_1_3(rt) {
            // runc 1.1.5 cannot kill --all without a cgroup ("lstat : no such file or
            // directory"); the init's SIGKILL takes its pid namespace along. runc 1.3 kills
            // the init alone, and the rest with its pid namespace, as berth does.
            out.expect_fail("runc kill --all without cgroups");
            c.rt.kill(&c.id, "KILL").expect_ok("runc kill");
        } else if rt == "crun" {
            // crun 1.28 signals the processes of the container's cgroup, and without one it
            // signals none: exit 0, and the container runs on (seen for 30 s in the forky
            // guest). Its init's SIGKILL takes the pid namespace along.
            out.expect_ok("crun kill --all without cgroups");
            std::thread::sleep(std::time::Duration::from_secs(1));
            assert_eq!(c.state()["status"], "running", "crun: kill --all without a cgroup");
            c.rt.kill(&c.id, "KILL").expect_ok("crun kill");
        } else {
            out.expect_ok("kill --all");
        }
        c.wait_status(&c.id, "stopped");
        c.rt.delete_force(&c.id).expect_ok("delete --force");
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
        c.assert_no_leaks("after delete --force");
    });
}

// 5. Security --------------------------------------------------------------------------

#[test]
fn rootless_cannot_write_a_root_owned_host_file_through_a_bind_mount() {
    each_runtime("rl_bind", |c, rt| {
        make_rootless(c);
        let canary = c.canary("hostfiles");
        fs::set_permissions(&canary, fs::Permissions::from_mode(0o755)).expect("chmod canary");
        c.bundle
            .add_mount(json!({"destination": "/mnt", "type": "bind", "source": canary, "options": ["rbind", "rw"]}));
        let out = c.run_sh(
            "cat /mnt/canary; echo pwned >> /mnt/canary && echo WROTE; touch /mnt/new && echo MADE; \
             chmod 666 /mnt/canary && echo CHMOD; true",
        );
        out.expect_ok(&format!("{rt}: run"));
        assert!(out.stdout.starts_with("untouched"), "{rt}: the file is readable\n{out}");
        assert!(!out.stdout.contains("WROTE") && !out.stdout.contains("MADE"), "{rt}: wrote the host\n{out}");
        assert!(!out.stdout.contains("CHMOD"), "{rt}: changed the host file\n{out}");
        c.assert_canary_untouched(&canary);
    });
}

#[test]
fn rootless_user_namespace_cannot_be_left() {
    // The harness (root) hands the container a handle on the host's user namespace; even
    // with it, setns back into it fails (it needs CAP_SYS_ADMIN there), and so does
    // joining pid 1's other namespaces through it.
    each_runtime("rl_setns", |c, rt| {
        make_rootless(c);
        c.bundle.set_sh(
            "echo FD3=$(readlink /proc/self/fd/3); echo SELF=$(readlink /proc/self/ns/user); \
             busybox nsenter --user=/proc/self/fd/3 true && echo LEFT; \
             busybox nsenter --mount=/proc/self/fd/4 true && echo MOUNT; true",
        );
        c.write();
        let leaks: Vec<PathBuf> = vec!["/proc/self/ns/user".into(), "/proc/self/ns/mnt".into()];
        let out =
            c.rt.cmd()
                .args(["run", "--preserve-fds", "2", "--bundle"])
                .arg(&c.bundle.dir)
                .arg(&c.id)
                .leak_fds(&leaks)
                .run();
        out.expect_ok(&format!("{rt}: run"));
        assert!(!out.stdout.contains("LEFT"), "{rt}: entered the host user namespace\n{out}");
        assert!(!out.stdout.contains("MOUNT"), "{rt}: entered the host mount namespace\n{out}");
        let host = fs::read_link("/proc/self/ns/user").expect("host userns").to_string_lossy().into_owned();
        assert!(out.stdout.contains(&format!("FD3={host}\n")), "{rt}: the handle did not reach the container\n{out}");
        assert!(!out.stdout.contains(&format!("SELF={host}\n")), "{rt}: still in the host user namespace\n{out}");
    });
}

#[test]
fn rootless_proc_self_exe_protections_hold() {
    // As for root (security.rs, CVE-2019-5736): the parked init is not the host binary, its
    // image cannot be opened for writing, and a #!/proc/self/exe entrypoint changes nothing.
    let mut c = berth_rootless_case("rl_exe");
    let bin = conformance::runtime::runtime_binary();
    let before = sha256_file(&bin);
    c.bundle.set_args(&["sleep", "1000"]);
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().expect("pid");
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("readlink init exe");
    assert_ne!(exe, fs::canonicalize(&bin).expect("canonical"), "the parked init runs the host binary");
    assert!(fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/exe")).is_err(), "init's exe is writable");
    c.rt.delete_force(&c.id).expect_ok("delete --force");
    c.bundle.rootfs.write_script("/entry", "#!/proc/self/exe\n");
    c.bundle.rootfs.write_script(
        "/attack",
        "#!/bin/sh\nfor p in /proc/self/exe /proc/1/exe; do echo pwned >> $p 2>/dev/null && echo WROTE $p; done\nexec /entry\n",
    );
    c.bundle.set_args(&["/attack"]);
    let out = c.run();
    assert!(!out.stdout.contains("WROTE"), "{out}");
    c.bundle.set_args(&["/entry"]);
    let _ = c.run();
    assert_eq!(sha256_file(&bin), before, "the runtime binary {} was modified", bin.display());
}

// 6. features -----------------------------------------------------------------------

#[test]
fn rootless_features_and_spec_agree() {
    let c = berth_rootless_case("rl_features");
    // features and spec keep no state: they work without XDG_RUNTIME_DIR too.
    let no_xdg = wrapper(&c.dir, &conformance::runtime::runtime_binary(), None);
    let out = conformance::runtime::Invocation::new(&no_xdg).arg("features").run();
    out.expect_ok("features as the user");
    assert_eq!(out.json()["annotations"]["io.github.berth.rootless"], "true", "{out}");
    // The user's systemd instance drives rootless --systemd-cgroup (runc reports the same).
    assert_eq!(out.json()["linux"]["cgroup"]["systemdUser"], true, "{out}");
    let spec = &c.bundle.config;
    let (uid, _) = user();
    assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], uid, "spec --rootless maps root to the user");
    assert!(spec["linux"]["namespaces"].as_array().expect("ns").iter().any(|n| n["type"] == "user"));
    assert!(spec["linux"].get("resources").is_none(), "spec --rootless requests no limits");
}

#[test]
fn rootless_delete_force_of_a_running_container_leaves_nothing() {
    each_runtime("rl_delrun", |c, rt| {
        start_rootless_sleepers(c);
        c.rt.delete_force(&c.id).expect_ok(&format!("{rt}: delete --force of a running container"));
        assert!(state_entries(&c.rt.root).is_empty(), "{rt}: state left behind");
        c.assert_no_leaks("after delete --force");
    });
}
