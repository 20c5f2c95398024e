//! berth on a pure cgroup v2 host: a qemu guest (Debian's kernel booted
//! with cgroup_no_v1=all) runs every test of conformance/qemu/tests.sh in
//! one boot; each #[test] here asserts the guest's verdict for one of them.
//! Needs qemu-system-x86, linux-image-amd64 and busybox-static (`make deps`)
//! and BERTH (`make conformance`); without them every test fails.

use std::sync::OnceLock;

use conformance::qemu::{run_guest, GuestConfig, GuestRun};

fn guest() -> &'static GuestRun {
    static RUN: OnceLock<Result<GuestRun, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let cfg = GuestConfig::from_env().map_err(|e| format!("cannot run the cgroup v2 guest: {e}"))?;
        let run = run_guest(&cfg).map_err(|e| format!("cgroup v2 guest: {e}"))?;
        eprintln!(
            "cgroup v2 guest: {} in {:.1?} (kernel {}); booted: {}",
            if run.done { "finished" } else { "DID NOT FINISH" },
            run.elapsed,
            cfg.kernel.display(),
            run.booted.as_deref().unwrap_or("never"),
        );
        for (name, r) in &run.results {
            eprintln!("  {} {name}: {}", if r.pass { "PASS" } else { "FAIL" }, r.detail);
        }
        Ok(run)
    });
    match run {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn assert_guest_pass(name: &str) {
    let run = guest();
    let r = run.result(name).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.pass, "guest test {name} failed: {}\n--- guest console ---\n{}", r.detail, run.console);
}

#[test]
fn guest_boots_with_every_controller_on_cgroup_v2() {
    let run = guest();
    let booted = run.booted.as_deref().unwrap_or_else(|| panic!("the guest never booted:\n{}", run.console));
    for c in ["cpu", "memory", "pids"] {
        assert!(
            booted.split("controllers=").nth(1).is_some_and(|l| l.split(',').any(|x| x.trim() == c)),
            "controller {c} missing from the guest's cgroup2 root: {booted}"
        );
    }
    assert!(run.done, "the guest did not reach the end of its tests:\n{}", run.console);
}

#[test]
fn run_exit_code_output_and_cgroupns_root() {
    assert_guest_pass("run_exit_code_output_and_cgroupns_root");
}

#[test]
fn cgroups_path_placement_at_clone_and_delete() {
    assert_guest_pass("cgroups_path_placement_at_clone_and_delete");
}

#[test]
fn exec_joins_the_container_cgroup_on_v2() {
    assert_guest_pass("exec_joins_the_container_cgroup_on_v2");
}

#[test]
fn resources_written_to_v2_files() {
    assert_guest_pass("resources_written_to_v2_files");
}

#[test]
fn ebpf_device_filter_denies_unlisted_devices() {
    assert_guest_pass("ebpf_device_filter_denies_unlisted_devices");
}

#[test]
fn ebpf_device_filter_allows_listed_device() {
    assert_guest_pass("ebpf_device_filter_allows_listed_device");
}

#[test]
fn pids_max_enforced() {
    assert_guest_pass("pids_max_enforced");
}

#[test]
fn memory_max_oom_kills() {
    assert_guest_pass("memory_max_oom_kills");
}

#[test]
fn kill_all_signals_every_process() {
    assert_guest_pass("kill_all_signals_every_process");
}

#[test]
fn delete_force_removes_running_container() {
    assert_guest_pass("delete_force_removes_running_container");
}

#[test]
fn no_leaks() {
    assert_guest_pass("no_leaks");
}

#[test]
fn more_resources_written_to_v2_files() {
    assert_guest_pass("more_resources_written_to_v2_files");
}

#[test]
fn cgroup_mount_shows_own_cgroup() {
    assert_guest_pass("cgroup_mount_shows_own_cgroup");
}

#[test]
fn delete_force_removes_nested_cgroups() {
    assert_guest_pass("delete_force_removes_nested_cgroups");
}

#[test]
fn default_cgroup_path_is_own_cgroup_plus_id() {
    assert_guest_pass("default_cgroup_path_is_own_cgroup_plus_id");
}

#[test]
fn ebpf_device_filter_last_matching_rule_wins() {
    assert_guest_pass("ebpf_device_filter_last_matching_rule_wins");
}

#[test]
fn run_without_pid_namespace_kills_leftovers() {
    assert_guest_pass("run_without_pid_namespace_kills_leftovers");
}

#[test]
fn refusals_leave_the_host_unchanged() {
    assert_guest_pass("refusals_leave_the_host_unchanged");
}

#[test]
fn ebpf_device_filter_matches_type_numbers_and_access() {
    assert_guest_pass("ebpf_device_filter_matches_type_numbers_and_access");
}

#[test]
fn resource_edge_values_on_v2() {
    assert_guest_pass("resource_edge_values_on_v2");
}

#[test]
fn parent_cgroup_outlives_first_delete() {
    assert_guest_pass("parent_cgroup_outlives_first_delete");
}

#[test]
fn ebpf_device_filter_of_parent_still_applies_to_nested_container() {
    assert_guest_pass("ebpf_device_filter_of_parent_still_applies_to_nested_container");
}

#[test]
fn ps_pause_events_update_on_cgroup_v2() {
    assert_guest_pass("ps_pause_events_update_on_cgroup_v2");
}

#[test]
fn kill_and_delete_of_paused_on_cgroup_v2() {
    assert_guest_pass("kill_and_delete_of_paused_on_cgroup_v2");
}

#[test]
fn events_stream_reports_oom_on_cgroup_v2() {
    assert_guest_pass("events_stream_reports_oom_on_cgroup_v2");
}

#[test]
fn systemd_cgroups_path_on_cgroup_v2() {
    assert_guest_pass("systemd_cgroups_path_on_cgroup_v2");
}

#[test]
fn userns_cgroup_is_delegated_to_the_container_root() {
    assert_guest_pass("userns_cgroup_is_delegated_to_the_container_root");
}

#[test]
fn checkpoint_leave_running_keeps_counting() {
    assert_guest_pass("checkpoint_leave_running_keeps_counting");
}

#[test]
fn checkpoint_stops_container() {
    assert_guest_pass("checkpoint_stops_container");
}

#[test]
fn restore_continues_count_with_same_pids() {
    assert_guest_pass("restore_continues_count_with_same_pids");
}

#[test]
fn restore_foreground_waits_and_cleans_up() {
    assert_guest_pass("restore_foreground_waits_and_cleans_up");
}

#[test]
fn restore_failure_leaves_nothing() {
    assert_guest_pass("restore_failure_leaves_nothing");
}

/// containerd with containerd-shim-berth-v2 on cgroup v2: `ctr task metrics` prints the v2
/// table (pids, cpu, memory) and an OOM kill gives TaskOOM and 137.
#[test]
fn containerd_shim_metrics_and_oom_on_cgroup_v2() {
    assert_guest_pass("containerd_shim_metrics_and_oom_on_cgroup_v2");
}

/// The container's cgroup removed before the shim read its OOM kill (as systemd removes an
/// emptied scope): the shim is stopped while its container is OOM-killed and the cgroup
/// removed, then let go; `ctr events` still shows TaskOOM, before TaskExit. Run inside
/// `containerd_shim_metrics_and_oom_on_cgroup_v2` (to select it alone, name that one).
#[test]
fn containerd_shim_reports_oom_of_a_cgroup_removed_before_it_was_read() {
    assert_guest_pass("containerd_shim_reports_oom_of_a_cgroup_removed_before_it_was_read");
}
