#!/bin/sh
# The systemd cgroup driver in the trixie guest (systemd 257 as PID 1, pure cgroup v2), run
# by the guest's agent: `sh <share>/trixie-systemd-cgroup.sh <share>`. The host puts into the
# share: berth (the static binary), and three busybox-bundle configs from `berth spec` with
# terminal false, root {"path": "rootfs", "readonly": true}, memory.limit 67108864 and
# pids.limit 42: config.json (args sleep 1000, cgroupsPath system.slice:berth:sdt),
# config2.json (the same, cgroupsPath bt-pod1.slice:cri:sdn: a slice that does not exist),
# config3.json (args true, cgroupsPath system.slice:berth:sdd). Prints "RESULT: ok" or
# "RESULT:" and what failed. conformance/tests/systemd_guest.rs fills the share and runs it.
S=$1
p=""
install -m0755 $S/berth /usr/local/bin/berth
for b in sd sd2 sd3; do
  r=/root/$b/rootfs; mkdir -p $r/bin $r/dev $r/proc $r/sys $r/tmp $r/etc $r/run
  cp /bin/busybox $r/bin/; for a in $(busybox --list); do [ $a = busybox ] || ln -sf busybox $r/bin/$a; done
done
cp $S/config.json /root/sd/config.json; cp $S/config2.json /root/sd2/config.json; cp $S/config3.json /root/sd3/config.json
B="berth --root /run/sdt --systemd-cgroup"
berth features | grep '"systemd"'
$B create -b /root/sd sdt || p="$p create-failed"
pid=$($B state sdt | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
echo "pid=$pid"
u=berth-sdt.scope; d=/sys/fs/cgroup/system.slice/$u
cat /proc/$pid/cgroup
grep -qx "0::/system.slice/$u" /proc/$pid/cgroup || p="$p cgroup=[$(cat /proc/$pid/cgroup)]"
v=$(systemctl show $u -p MemoryMax --value); [ "$v" = 67108864 ] || p="$p MemoryMax=$v"
v=$(cat $d/memory.max); [ "$v" = 67108864 ] || p="$p memory.max=$v"
v=$(systemctl show $u -p TasksMax --value); [ "$v" = 42 ] || p="$p TasksMax=$v"
v=$(cat $d/pids.max); [ "$v" = 42 ] || p="$p pids.max=$v"
v=$(systemctl show $u -p Delegate --value); [ "$v" = yes ] || p="$p Delegate=$v"
systemctl status --no-pager -l $u >/tmp/st 2>&1; echo "status-rc=$?"; cat /tmp/st
grep -q "$pid" /tmp/st || p="$p status-lacks-pid"
systemctl show $u -p ControlGroup -p Slice -p DevicePolicy -p CPUWeight -p DefaultDependencies
echo "procs: $(cat $d/cgroup.procs | tr '\n' ' ')"
$B start sdt || p="$p start-failed"
$B update --memory 134217728 sdt || p="$p update-failed"
v=$(systemctl show $u -p MemoryMax --value); [ "$v" = 134217728 ] || p="$p updated-MemoryMax=$v"
v=$(cat $d/memory.max); [ "$v" = 134217728 ] || p="$p updated-memory.max=$v"
systemctl daemon-reload
v=$(cat $d/memory.max); [ "$v" = 134217728 ] || p="$p reload-memory.max=$v"
v=$(cat $d/pids.max); [ "$v" = 42 ] || p="$p reload-pids.max=$v"
$B pause sdt || p="$p pause-failed"
v=$(cat $d/cgroup.freeze); [ "$v" = 1 ] || p="$p freeze=$v"
$B resume sdt || p="$p resume-failed"
$B exec sdt true || p="$p exec-failed"
$B ps sdt || p="$p ps-failed"
$B delete --force sdt || p="$p delete-failed"
v=$(systemctl show $u -p LoadState --value); [ "$v" = not-found ] || p="$p after-delete-LoadState=$v"
[ -e $d ] && p="$p dir-left"
$B create -b /root/sd sdt || p="$p recreate-failed"
$B delete --force sdt || p="$p redelete-failed"
v=$(systemctl show $u -p LoadState --value); [ "$v" = not-found ] || p="$p after-redelete-LoadState=$v"
# a missing nested slice
$B create -b /root/sd2 sdn || p="$p slice-create-failed"
pid=$($B state sdn | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
grep -qx "0::/bt.slice/bt-pod1.slice/cri-sdn.scope" /proc/$pid/cgroup || p="$p slice-cgroup=[$(cat /proc/$pid/cgroup)]"
v=$(systemctl show bt-pod1.slice -p ActiveState --value); [ "$v" = active ] || p="$p slice-state=$v"
$B delete --force sdn || p="$p slice-delete-failed"
v=$(systemctl show cri-sdn.scope -p LoadState --value); [ "$v" = not-found ] || p="$p slice-scope-left=$v"
systemctl stop bt-pod1.slice
# a container whose init exited
$B create -b /root/sd3 sdd || p="$p dead-create-failed"
$B start sdd || p="$p dead-start-failed"
sleep 2
$B state sdd | grep -q '"stopped"' || p="$p dead-not-stopped"
systemctl show berth-sdd.scope -p LoadState -p ActiveState -p Result
$B delete sdd || p="$p dead-delete-failed"
v=$(systemctl show berth-sdd.scope -p LoadState --value); [ "$v" = not-found ] || p="$p dead-left=$v"
$B create -b /root/sd3 sdd || p="$p dead-recreate-failed"
$B delete --force sdd || p="$p dead-redelete-failed"
berth features >/tmp/f 2>&1; echo features-rc=$?; grep -i systemd /tmp/f
echo "RESULT:${p:- ok}"
