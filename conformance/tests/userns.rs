//! User namespaces: `linux.uidMappings`/`gidMappings` with a new user namespace, joining
//! one by path, and the bad-input rules (B10).

use conformance::Case;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const HOST_ID: u32 = 200_000;

fn chown_tree(path: &Path, id: u32) {
    let st = Command::new("chown").args(["-R", &format!("{id}:{id}")]).arg(path).status().expect("chown");
    assert!(st.success(), "chown -R {}", path.display());
}

/// A case whose container gets a new user namespace mapping 0..65536 to HOST_ID.., with
/// its rootfs owned by the mapped root.
fn userns_case(name: &str) -> Case {
    let mut c = Case::new(name);
    make_userns(&mut c);
    c
}

/// What `userns_case` does, on an existing case.
fn make_userns(c: &mut Case) {
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.config()["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    chown_tree(&c.bundle.rootfs.path, HOST_ID);
}

#[test]
fn container_root_is_the_mapped_host_uid() {
    let mut c = userns_case("uns_map");
    let out = c.sh_ok("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "200000", "65536", "0", "200000", "65536", "0", "0"], "{out}");

    c.bundle.set_args(&["sleep", "100"]);
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().unwrap();
    c.start().expect_ok("start");
    let meta = std::fs::metadata(format!("/proc/{pid}")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (HOST_ID, HOST_ID), "the host sees the mapped ids");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains(&format!("Uid:\t{HOST_ID}\t{HOST_ID}")), "{status}");
}

// runc's timens.bats "simple timens + userns": the first child writes the offsets once it
// is root of the new user namespace, whose root may not open the file /proc gives it.
#[test]
fn time_offsets_apply_in_a_new_user_namespace() {
    let mut c = userns_case("uns_timens");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    c.config()["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 7881, "nanosecs": 2718281},
        "boottime": {"secs": 1337, "nanosecs": 3141519}
    });
    let out = c.sh_ok("cat /proc/self/timens_offsets");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [["monotonic", "7881", "2718281"], ["boottime", "1337", "3141519"]], "{out}");
}

#[test]
fn files_created_in_a_bind_mount_belong_to_the_mapped_host_uid() {
    let mut c = userns_case("uns_bind");
    let shared = c.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chown_tree(&shared, HOST_ID);
    c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": shared, "options": ["rbind", "rw"]}));
    c.sh_ok("touch /mnt/made-inside; mkdir /mnt/dir");
    for name in ["made-inside", "dir"] {
        let meta = std::fs::metadata(shared.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (HOST_ID, HOST_ID), "{name}");
    }
}

/// The runtime opens a bind source with the host's rights: the container's root (host
/// uid 200000) cannot search the 0700 host directory above it, yet the volume works.
#[test]
fn bind_source_below_a_directory_the_mapped_root_cannot_search() {
    conformance::each_runtime("uns_bind_0700", |c, rt| {
        make_userns(c);
        let hidden = c.dir.join("host-only");
        let vol = hidden.join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::write(vol.join("in"), "from-host\n").unwrap();
        chown_tree(&vol, HOST_ID);
        c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": vol, "options": ["rbind", "rw"]}));
        let out = c.sh_ok("cat /mnt/in; echo from-ctr > /mnt/out");
        assert_eq!(out, "from-host\n", "{rt}");
        let meta = std::fs::metadata(vol.join("out")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (HOST_ID, HOST_ID), "{rt}");
    });
}

/// In a user namespace the kernel locks the flags of the host's mounts: a bind whose
/// options name a flag keeps the source's locked ones the options do not name (its
/// read-only and nodev here) rather than failing, and one whose options clear a locked
/// flag (`rw` of a read-only source) fails naming the mount, as runc 1.2 and later do.
/// crun 1.28 binds the source without its locked flags (`rw,nosuid` here): not compared.
#[test]
fn bind_in_a_user_namespace_keeps_the_source_locked_flags_and_refuses_to_clear_one() {
    conformance::each_runtime_but(&["runc<1.3", "crun"], "uns_bind_locked", |c, rt| {
        make_userns(c);
        let vol = c.dir.join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        chown_tree(&vol, HOST_ID);
        c.host_mount(&vol, &["-o remount,bind,ro,nodev"]);
        c.bundle
            .add_mount(json!({"destination": "/mnt", "type": "bind", "source": vol, "options": ["bind", "nosuid"]}));
        let out = c.sh_ok("cat /proc/mounts");
        let line = out.lines().rfind(|l| l.split(' ').nth(1) == Some("/mnt")).unwrap_or_else(|| panic!("{rt}: {out}"));
        let flags: Vec<&str> = line.split(' ').nth(3).unwrap_or("").split(',').collect();
        for f in ["ro", "nodev", "nosuid"] {
            assert!(flags.contains(&f), "{rt}: {f} missing on /mnt: {flags:?}");
        }

        c.bundle.config["mounts"].as_array_mut().unwrap().pop();
        c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": vol, "options": ["bind", "rw"]}));
        c.bundle.set_sh("true");
        let out = c.create();
        if rt == "berth" {
            c.expect_clean_failure(&out, &["\"/mnt\"", "cannot clear ro locked on the source's mount"]);
        } else {
            out.expect_fail(&format!("{rt}: a read-write bind of a locked read-only source"));
            c.assert_no_leaks("after the failed create");
        }
    });
}

/// When the host cannot open the source either, the one error line names the mount and
/// the source, and nothing is left behind.
#[test]
fn missing_bind_source_in_a_user_namespace_names_the_mount_and_source() {
    let mut c = userns_case("uns_bind_missing");
    let missing = c.dir.join("host-only/missing");
    std::fs::create_dir(c.dir.join("host-only")).unwrap();
    std::fs::set_permissions(c.dir.join("host-only"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": missing, "options": ["rbind"]}));
    let out = c.expect_create_fails(&["\"/mnt\""]);
    assert!(out.stderr.contains(missing.to_str().unwrap()) && out.stderr.contains("ENOENT"), "{out}");
}

#[test]
fn proc_sys_dev_and_hostname_work_inside_a_user_namespace() {
    let mut c = userns_case("uns_mounts");
    let out = c.sh_ok(
        "hostname; grep -c . /proc/self/status >/dev/null && echo proc; ls /sys/class/net; \
         echo hi > /dev/null && head -c 4 /dev/zero | wc -c; stat -c '%u %g' /; ls -ld /dev/pts >/dev/null && echo pts",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "berth", "{out}");
    assert!(lines.contains(&"proc"), "{out}");
    assert!(lines.contains(&"lo"), "sysfs of the container's netns: {out}");
    assert!(lines.contains(&"4"), "{out}");
    assert!(lines.contains(&"0 0"), "the rootfs belongs to root inside: {out}");
    assert!(lines.contains(&"pts"), "{out}");
}

/// A created container holding a new user namespace: the case, its init's pid and the
/// namespace's /proc link.
fn user_namespace_holder(name: &str) -> (Case, i64, std::path::PathBuf) {
    let mut c = userns_case(name);
    c.bundle.set_args(&["sleep", "100"]);
    c.create().expect_ok("create of the user namespace holder");
    let pid = c.state()["pid"].as_i64().unwrap();
    let holder_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    (c, pid, holder_ns)
}

#[test]
fn an_existing_user_namespace_is_joined_by_path() {
    let (mut c, pid, holder_ns) = user_namespace_holder("uns_join");

    // Without mappings (the namespace has its own), then with exactly its mappings.
    for (n, keep_maps) in [(2, false), (3, true)] {
        let mut config = joining_config(&c, pid);
        if keep_maps {
            config["linux"]["uidMappings"] = c.bundle.config["linux"]["uidMappings"].clone();
            config["linux"]["gidMappings"] = c.bundle.config["linux"]["gidMappings"].clone();
        }
        config["process"]["args"] = json!(["sh", "-c", "cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user"]);
        let out = run_with_config(&mut c, n, config);
        out.expect_ok("run joining the user namespace");
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(&words[..4], ["0", "200000", "65536", "0"], "{}", out.stdout);
        assert_eq!(words[4], holder_ns.to_str().unwrap(), "same user namespace as the holder");
    }
}

/// `c`'s config made to join the user namespace of process `pid` by path, without maps.
fn joining_config(c: &Case, pid: i64) -> serde_json::Value {
    let mut config = c.bundle.config.clone();
    let ns = config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "user");
    ns.push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    config["linux"].as_object_mut().unwrap().remove("uidMappings");
    config["linux"].as_object_mut().unwrap().remove("gidMappings");
    config
}

/// Runs container `n` of `c`'s bundle with `config` in place of its own, which is put back.
fn run_with_config(c: &mut Case, n: u32, config: serde_json::Value) -> conformance::Out {
    let id = c.other_id(n);
    let saved = std::mem::replace(&mut c.bundle.config, config);
    c.write();
    let out = c.rt.run(&id, &c.bundle.dir, &[]);
    c.bundle.config = saved;
    out
}

// runc 1.3's userns.bats "userns join external namespaces [wrong userns owner]": a joined
// user namespace and a network namespace it does not own (made on the host, as the CRI
// plugin makes a pod's): the network namespace is joined with the runtime's privileges.
#[test]
fn a_network_namespace_the_joined_user_namespace_does_not_own_is_joined_too() {
    let (mut c, pid, holder_ns) = user_namespace_holder("uns_join_net");
    // A network namespace of the host's user namespace, held by a process of its own.
    let mut net_holder = Command::new("unshare").args(["-n", "sleep", "100"]).spawn().expect("unshare -n sleep");
    let net_pid = net_holder.id();
    c.on_cleanup(move || {
        let _ = net_holder.kill();
        let _ = net_holder.wait();
    });
    let net_ns =
        conformance::util::poll_until("the holder's network namespace", std::time::Duration::from_secs(10), || {
            let ns = std::fs::read_link(format!("/proc/{net_pid}/ns/net")).ok()?;
            (ns != std::fs::read_link("/proc/self/ns/net").unwrap()).then_some(ns)
        });

    let mut config = joining_config(&c, pid);
    let ns = config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "network", "path": format!("/proc/{net_pid}/ns/net")}));
    // Without privileges over that network namespace, sysfs cannot be mounted: the host's.
    for m in config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "sysfs" {
            *m = json!({"destination": m["destination"], "type": "bind", "source": "/sys", "options": ["rbind", "ro"]});
        }
    }
    config["process"]["args"] = json!(["sh", "-c", "readlink /proc/self/ns/user; readlink /proc/self/ns/net"]);
    let out = run_with_config(&mut c, 2, config);
    out.expect_ok("run joining the user namespace and a host network namespace");
    let seen: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(seen, [holder_ns.to_str().unwrap(), net_ns.to_str().unwrap()], "{out}");
}

// B10: bad mappings fail naming the field and leave nothing behind.

#[test]
fn b10_user_namespace_without_mappings() {
    let mut c = Case::new("b10_userns_nomaps");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    c.expect_create_fails(&["linux.uidMappings"]);
    c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.expect_create_fails(&["linux.gidMappings"]);
}

#[test]
fn b10_bad_mappings_are_refused_naming_the_entry() {
    for (n, uid, needle) in [
        ("size0", json!([{"containerID": 0, "hostID": HOST_ID, "size": 0}]), "linux.uidMappings[0].size"),
        ("overflow", json!([{"containerID": 0, "hostID": 4294967295u32, "size": 2}]), "linux.uidMappings[0]"),
        (
            "overlap",
            json!([{"containerID": 0, "hostID": HOST_ID, "size": 100}, {"containerID": 50, "hostID": 300000, "size": 10}]),
            "linux.uidMappings[1] overlaps",
        ),
        ("noroot", json!([{"containerID": 1, "hostID": HOST_ID, "size": 100}]), "root"),
    ] {
        let mut c = Case::new(&format!("b10_{n}"));
        c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        c.config()["linux"]["uidMappings"] = uid;
        c.config()["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
        c.expect_create_fails(&[needle]);
    }
}

#[test]
fn b10_mappings_with_a_joined_user_namespace_are_refused() {
    let mut c = Case::new("b10_join_maps");
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": "/proc/self/ns/user"}));
    c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.config()["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.expect_create_fails(&["linux.uidMappings: do not match those of the user namespace /proc/self/ns/user"]);
}

// Id-mapped mounts.

fn owned_dir(c: &Case, name: &str, id: u32) -> std::path::PathBuf {
    let d = c.dir.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("file"), "x").unwrap();
    chown_tree(&d, id);
    d
}

#[test]
fn idmapped_mount_with_its_own_maps_shows_host_uid_1000_as_root() {
    let mut c = Case::new("uns_idmap_own");
    let d = owned_dir(&c, "owned", 1000);
    // As runc writes them, the entries go into the mapping's user namespace as given: the
    // inside (containerID) is the id on disk, the outside (hostID) what processes see.
    c.bundle.add_mount(json!({
        "destination": "/mnt", "type": "bind", "source": d, "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
        "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]
    }));
    let out = c.sh_ok("stat -c '%u %g' /mnt /mnt/file; touch /mnt/new");
    assert_eq!(out, "0 0\n0 0\n", "{out}");
    let meta = std::fs::metadata(d.join("new")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "a file root makes lands as host 1000");
}

// An id-mapped bind takes the mounts below its source along only with the `rbind` option,
// as a bind without idmap does; a `type` of "rbind" says nothing (runc reads only options).
#[test]
fn idmapped_bind_is_recursive_only_with_the_rbind_option() {
    let mut c = Case::new("uns_idmap_rec");
    let root = c.bundle.rootfs.path.clone();
    // A tmpfs on <rootfs>/src/sub, made by the container's own mounts, under the sources.
    c.bundle.add_mount(json!({"destination": "/src/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let maps = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    for (dest, typ, opts) in
        [("/rec", "bind", &["rbind", "idmap"][..]), ("/top", "bind", &["bind", "idmap"]), ("/typ", "rbind", &["idmap"])]
    {
        c.bundle.add_mount(json!({
            "destination": dest, "type": typ, "source": root.join("src"), "options": opts,
            "uidMappings": maps, "gidMappings": maps
        }));
    }
    let out = c.sh_ok("cut -d' ' -f2,3 /proc/mounts");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"/rec/sub tmpfs"), "rbind + idmap brings the tmpfs along:\n{out}");
    assert!(!lines.iter().any(|l| l.starts_with("/top/sub ")), "bind + idmap is one mount:\n{out}");
    assert!(!lines.iter().any(|l| l.starts_with("/typ/sub ")), "type rbind without the option is one mount:\n{out}");
    for dest in ["/rec ", "/top ", "/typ "] {
        assert!(lines.iter().any(|l| l.starts_with(dest)), "{dest}is mounted:\n{out}");
    }
}

#[test]
fn idmap_without_own_maps_uses_the_containers_user_namespace_maps() {
    let mut c = userns_case("uns_idmap_ctr");
    let d = owned_dir(&c, "hostroot", 0);
    c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": d, "options": ["rbind", "ridmap"]}));
    // Host root's files appear owned by root in the container, not by nobody (65534).
    let out = c.sh_ok("stat -c '%u %g' /mnt/file; touch /mnt/new");
    assert_eq!(out, "0 0\n");
    let meta = std::fs::metadata(d.join("new")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

// runc 1.3's idmap.bats "idmap mount (idmap flag, implied mapping, userns join)": without
// maps of its own the mount takes those of the user namespace the container joins.
#[test]
fn idmap_without_own_maps_in_a_joined_user_namespace_takes_its_maps() {
    let (mut c, pid, _) = user_namespace_holder("uns_idmap_join");
    let d = owned_dir(&c, "hostroot", 0);
    let mut config = joining_config(&c, pid);
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": d, "options": ["rbind", "idmap"]
    }));
    config["process"]["args"] = json!(["stat", "-c", "%u %g", "/mnt/file"]);
    let out = run_with_config(&mut c, 2, config);
    out.expect_ok("run with an id-mapped mount in a joined user namespace");
    // Host root's file is root's in the container, not nobody's (65534) as a plain bind.
    assert_eq!(out.stdout, "0 0\n");
}

/// runc 1.3's mounts.bats "mount order, container bind-mount source": a tree of binds,
/// then binds whose sources and destinations are spelled as host paths under the rootfs,
/// each source seeing the mounts made before it. With `idmap` those go through `berth
/// create`, which maps them when their turn comes.
fn mount_order(c: &mut Case, idmap: bool) {
    let src = c.dir.join("bind-src");
    for sub in ["a/x", "b/y", "c/z"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
        std::fs::write(src.join(sub).join("file"), format!("{sub}\n")).unwrap();
        let top = &sub[..1];
        std::os::unix::fs::symlink(top, src.join(format!("sym-{top}"))).unwrap();
    }
    // Out of reach of a user namespace's root: `berth create` opens these.
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let root = c.bundle.rootfs.path.clone();
    let ctr_opts: &[&str] = if idmap { &["rbind", "idmap"] } else { &["rbind"] };
    for (source, dest, opts) in [
        (src.join("a"), "/mnt".into(), &["rbind"][..]),
        (src.join("sym-b"), "/mnt/x".into(), &["rbind"]),
        (src.join("c"), "/mnt/x/y".into(), &["rbind"]),
        (src.join("sym-a"), "/mnt/x/y/z".into(), &["rbind"]),
        (root.join("mnt/x"), root.join("mnt/x/y/z/x"), ctr_opts),
        (root.join("mnt/x/y"), root.join("mnt/x/y/z"), ctr_opts),
        (root.join("mnt"), root.join("final"), ctr_opts),
    ] {
        let dest: std::path::PathBuf = dest;
        c.bundle.add_mount(json!({"destination": dest, "type": "bind", "source": source, "options": opts}));
    }
    c.bundle.set_args(&["cat", "/final/x/y/z/z/x/y/z/x/file"]);
    let out = c.run();
    out.expect_ok("run with binds of sources under the rootfs");
    assert_eq!(out.stdout, "a/x\n", "the last file comes from a/x");
}

#[test]
fn bind_sources_under_the_rootfs_see_the_mounts_made_before_them() {
    mount_order(&mut Case::new("mnt_order"), false);
}

#[test]
fn idmapped_sources_under_the_rootfs_see_the_mounts_made_before_them_in_a_user_namespace() {
    mount_order(&mut userns_case("uns_mnt_order_idmap"), true);
}

#[test]
fn features_report_idmap_user_and_time() {
    let c = Case::new("uns_features");
    let out = c.rt.cmd().arg("features").run();
    out.expect_ok("features");
    let f = out.json();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], json!(true));
    let opts: Vec<&str> = f["mountOptions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(opts.contains(&"idmap") && opts.contains(&"ridmap"), "{opts:?}");
    let ns: Vec<&str> = f["linux"]["namespaces"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(ns.contains(&"user") && ns.contains(&"time"), "{ns:?}");
}

// B7: id-mapped mount errors.

#[test]
fn b7_idmap_on_a_non_bind_mount_is_refused() {
    let mut c = Case::new("b7_idmap_tmpfs");
    c.bundle.add_mount(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
    }));
    c.expect_create_fails(&["idmap needs a bind mount"]);
}

#[test]
fn b7_idmap_with_only_uid_mappings_is_refused() {
    let mut c = Case::new("b7_idmap_half");
    let d = c.dir.join("half");
    std::fs::create_dir(&d).unwrap();
    c.bundle.add_mount(json!({
        "destination": "/mnt", "type": "bind", "source": d, "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
    }));
    c.expect_create_fails(&["uidMappings and gidMappings"]);
}

#[test]
fn b7_idmap_without_any_maps_is_refused() {
    let mut c = Case::new("b7_idmap_none");
    let d = c.dir.join("none");
    std::fs::create_dir(&d).unwrap();
    c.bundle.add_mount(json!({"destination": "/mnt", "type": "bind", "source": d, "options": ["bind", "idmap"]}));
    c.expect_create_fails(&["mounts[", "idmap"]);
}

#[test]
fn exec_joins_the_containers_user_namespace() {
    let mut c = userns_case("uns_exec");
    c.bundle.set_args(&["sleep", "100"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let out = c.rt.exec(&["exec", &c.id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    out.expect_ok("exec");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "200000", "65536"], "{}", out.stdout);
}

#[test]
fn without_cap_setgid_setgroups_is_denied_and_a_single_gid_is_mapped() {
    // As runc does for callers that cannot set groups: "deny" goes to setgroups first,
    // which the kernel requires to accept a gid map from such a writer.
    let mut c = Case::new("uns_nosetgid");
    c.config()["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    c.config()["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.config()["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    chown_tree(&c.bundle.rootfs.path, HOST_ID);
    Command::new("chgrp").args(["-R", "0"]).arg(&c.bundle.rootfs.path).status().unwrap();
    // Only gid 0 exists inside: devpts cannot take gid=5 (runc's rootless spec drops it too).
    for m in c.config()["mounts"].as_array_mut().unwrap() {
        if m["type"] == "devpts" {
            m["options"] = json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]);
        }
    }
    c.bundle.set_sh("cat /proc/self/setgroups /proc/self/gid_map; id -u; id -g");
    c.write();
    let bin = conformance::runtime::runtime_binary();
    let out = Command::new("capsh")
        .args(["--drop=cap_setgid", "--"])
        .arg("-c")
        .arg(format!(
            "exec {} --root {} run --bundle {} {}",
            bin.display(),
            c.rt.root.display(),
            c.bundle.dir.display(),
            c.id
        ))
        .output()
        .expect("capsh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words, ["deny", "0", "0", "1", "0", "0"], "{stdout}");
}

#[test]
fn hooks_get_the_inits_pid_and_container_hooks_run_in_the_user_namespace() {
    let mut c = userns_case("uns_hooks");
    let log_dir = c.dir.join("hooklog");
    std::fs::create_dir_all(&log_dir).unwrap();
    chown_tree(&log_dir, HOST_ID);
    c.bundle
        .add_mount(json!({"destination": "/hooklog", "type": "bind", "source": log_dir, "options": ["rbind", "rw"]}));
    let ns = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("readlink /proc/self/ns/user > {dir}/{name}")]});
    let host_dir = log_dir.to_str().unwrap().to_string();
    c.config()["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {host_dir}/state")]}],
        "createContainer": [ns(&host_dir, "cc")],
        "startContainer": [ns("/hooklog", "sc")]
    });
    c.bundle.set_args(&["sleep", "100"]);
    c.create().expect_ok("create");
    c.start().expect_ok("start");
    let pid = c.state()["pid"].as_i64().unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log_dir.join("state")).unwrap()).unwrap();
    assert_eq!(state["pid"].as_i64(), Some(pid), "createRuntime sees the init's pid, not the first child's");
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    for f in ["cc", "sc"] {
        conformance::poll_until(f, std::time::Duration::from_secs(10), || log_dir.join(f).exists().then_some(()));
        let text = std::fs::read_to_string(log_dir.join(f)).unwrap();
        assert_eq!(text.trim(), init_ns.to_str().unwrap(), "{f} hook ran in the container's user namespace");
    }
}

#[test]
fn terminal_works_inside_a_user_namespace() {
    let mut c = userns_case("uns_tty");
    c.config()["process"]["terminal"] = true.into();
    c.bundle.set_sh("tty; id -u; echo done");
    let (l, sock) = conformance::console::listen(&c.dir);
    let t = std::thread::spawn(move || conformance::console::recv_fd(&l));
    c.create_with(&["--console-socket", &sock]).expect_ok("create with a console socket");
    let master = t.join().expect("console receiver");
    c.start().expect_ok("start");
    let text = conformance::console::read_until(master, "done");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text:?}");
    assert_eq!(lines[1], "0", "{text:?}");
    c.wait_status(&c.id, "stopped");
}

#[test]
fn created_init_in_a_user_namespace_is_not_dumpable() {
    let mut c = userns_case("uns_dumpable");
    c.bundle.set_args(&["true"]);
    c.create().expect_ok("create");
    let pid = c.state()["pid"].as_i64().unwrap();
    // The /proc files of a non-dumpable task belong to host root (the root of the user
    // namespace its memory was created in), those of a dumpable one to its own uid.
    let meta = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(meta.uid(), 0, "a dumpable init's environ would belong to {HOST_ID}");
}

/// The cgroup mount is read-only when its options say `ro` (every client's default) and
/// writable without it, as runc (runc's own tests drop `ro` to make sub-cgroups); but in a
/// user namespace without a cgroup namespace of its own it stays read-only whatever the
/// options say (CVE-2023-25809).
#[test]
fn cgroup_mount_follows_its_ro_option_but_not_in_a_user_namespace_without_cgroupns() {
    fn drop_ro(c: &mut Case) {
        let mounts = c.config()["mounts"].as_array_mut().unwrap();
        let cg = mounts.iter_mut().find(|m| m["destination"] == "/sys/fs/cgroup").expect("cgroup mount");
        cg["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
    }
    let probe = "mkdir /sys/fs/cgroup/pids/sub 2>&1 && rmdir /sys/fs/cgroup/pids/sub && echo writable";
    conformance::each_runtime("uns_cg_rw", |c, rt| {
        drop_ro(c);
        c.bundle.remove_namespace("cgroup");
        let out = c.sh_ok(probe);
        assert_eq!(out.trim(), "writable", "{rt}");
    });
    let mut c = userns_case("uns_cg_ro");
    drop_ro(&mut c);
    c.bundle.remove_namespace("cgroup");
    let out = c.sh_ok(&format!("{probe}; grep ' /sys/fs/cgroup/pids ' /proc/mounts"));
    assert!(out.contains("Read-only file system"), "{out}");
    let opts = out.lines().last().and_then(|l| l.split(' ').nth(3)).unwrap_or_default();
    assert!(opts.split(',').any(|o| o == "ro"), "{out}");
}
