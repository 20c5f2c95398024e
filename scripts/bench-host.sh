#!/usr/bin/env bash
# Makes a cgroup v1 hybrid host usable by crun for the side-by-side benchmark.
# crun 1.8 refuses a hybrid host where any controller sits on the cgroup2 hierarchy, and on
# a fresh VM of this project hugetlb does. Binding hugetlb to a v1 hierarchy of its own
# (possible while no cgroup2 group uses it) gives the all-v1 layout runc and crun expect.
# It lasts until reboot; berth works with either layout.
set -euo pipefail
unified=/sys/fs/cgroup/unified
if [ -f "$unified/cgroup.controllers" ] && grep -qw hugetlb "$unified/cgroup.controllers" \
   && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo; then
  echo "bench: binding hugetlb to a cgroup v1 hierarchy so crun can run on this host (until reboot)"
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
