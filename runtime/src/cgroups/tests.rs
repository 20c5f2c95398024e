//! Tests of the Manager against a fake cgroup2 tree and, as root, the real host.
