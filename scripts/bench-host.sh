#!/usr/bin/env bash
# Makes a cgroup v1 hybrid host usable by crun for the side-by-side benchmark.
# crun 1.8 refuses a hybrid host where any controller sits on the cgroup2 hierarchy, and on
# a fresh VM of this project hugetlb does. Binding hugetlb to a v1 hierarchy of its own
# (possible while no cgroup2 group uses it) gives the all-v1 layout runc and crun expect.
# berth works with either layout. `bench-host.sh restore` undoes it (make bench runs that at
# the end, also when a step failed): left bound, crun would run on this host, and the tests
# that compare with crun where it can run would meet crun 1.8's gaps.
set -euo pipefail
unified=/sys/fs/cgroup/unified
marker=/run/berth-bench-hugetlb
if [ "${1:-}" = restore ]; then
  if [ -e "$marker" ] && grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo; then
    echo "bench: giving hugetlb back to the cgroup2 hierarchy"
    umount /sys/fs/cgroup/hugetlb
    # What stays is a directory of /sys/fs/cgroup's tmpfs. podman 4.3 on a v1 host makes its
    # conmon groups under every directory it finds there, as plain tmpfs directories and files
    # once the hierarchy is gone (found: libpod_parent/conmon/tasks, which made this rmdir
    # fail and left hugetlb bound). Nothing under it is a cgroup any more.
    if [ "$(stat -f -c %T /sys/fs/cgroup/hugetlb)" = tmpfs ]; then rm -rf /sys/fs/cgroup/hugetlb; fi
    # The kernel frees an unmounted v1 hierarchy only once nothing holds it; seen kept
    # after a bench (hugetlb still on its v1 hierarchy in /proc/cgroups, so crun would
    # run on this host and the crun-oracle tests see it). A fresh mount and umount of the
    # same hierarchy lets it go.
    for _ in 1 2 3 4 5; do
      awk '$1 == "hugetlb" && $2 == 0 { found = 1 } END { exit !found }' /proc/cgroups && break
      tmp=$(mktemp -d)
      mount -t cgroup -o hugetlb cgroup "$tmp" && umount "$tmp"
      rmdir "$tmp"
      sleep 0.2
    done
    awk '$1 == "hugetlb" && $2 == 0 { found = 1 } END { exit !found }' /proc/cgroups \
      || echo "bench: hugetlb is still on a cgroup v1 hierarchy (see /proc/cgroups)" >&2
  fi
  rm -f "$marker"
  exit 0
fi
if [ -f "$unified/cgroup.controllers" ] && grep -qw hugetlb "$unified/cgroup.controllers" \
   && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo; then
  echo "bench: binding hugetlb to a cgroup v1 hierarchy so crun can run on this host (until the bench ends)"
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || { rmdir /sys/fs/cgroup/hugetlb; exit 1; }
  touch "$marker"
fi
