//! The per-process kernel attributes of runtime-spec 1.3 that the container's process
//! inherits through execve: personality, scheduler, I/O priority, CPU affinity and NUMA
//! memory policy. Validation (runc's validator rules) runs in `berth create` before anything
//! exists; `apply_*` runs in the init. Errors name the config field.

use nix::sched::CpuSet;
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process, Scheduler,
};

use crate::init::error::{applying, InitError};
use crate::sys::sched::{ioprio_set_self, sched_setattr, set_mempolicy, SchedAttr};

/// A field name and what is wrong with it.
pub type FieldError = (String, String);

fn err<T>(field: &str, msg: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_string(), msg.into()))
}

// ---- personality -------------------------------------------------------------------------

const PER_LINUX: u64 = 0x0000;
const PER_LINUX32: u64 = 0x0008;

fn personality_flag(name: &str) -> Option<u64> {
    Some(match name {
        "UNAME26" => 0x002_0000,
        "ADDR_NO_RANDOMIZE" => 0x004_0000,
        "FDPIC_FUNCPTRS" => 0x008_0000,
        "MMAP_PAGE_ZERO" => 0x010_0000,
        "ADDR_COMPAT_LAYOUT" => 0x020_0000,
        "READ_IMPLIES_EXEC" => 0x040_0000,
        "ADDR_LIMIT_32BIT" => 0x080_0000,
        "SHORT_INODE" => 0x100_0000,
        "WHOLE_SECONDS" => 0x200_0000,
        "STICKY_TIMEOUTS" => 0x400_0000,
        "ADDR_LIMIT_3GB" => 0x800_0000,
        _ => return None,
    })
}

fn personality_value(p: &LinuxPersonality) -> Result<u64, FieldError> {
    let mut v = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    for (i, f) in p.flags().as_deref().unwrap_or(&[]).iter().enumerate() {
        match personality_flag(f) {
            Some(bit) => v |= bit,
            None => return err(&format!("linux.personality.flags[{i}]"), format!("unknown personality flag {f:?}")),
        }
    }
    Ok(v)
}

pub fn validate_personality(p: &LinuxPersonality) -> Result<(), FieldError> {
    personality_value(p).map(drop)
}

pub fn apply_personality(p: &LinuxPersonality) -> Result<(), InitError> {
    let v = personality_value(p).map_err(|(f, m)| InitError::invalid(f, m))?;
    // The domain is a number, not a flag: keep every bit as given.
    let persona = nix::sys::personality::Persona::from_bits_retain(v as libc::c_int);
    nix::sys::personality::set(persona).map_err(std::io::Error::from).map_err(applying("linux.personality").io())?;
    Ok(())
}

// ---- scheduler ---------------------------------------------------------------------------

fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

pub fn validate_scheduler(s: &Scheduler) -> Result<(), FieldError> {
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return err("process.scheduler.nice", format!("{nice} is outside -20..19"));
    }
    let realtime = matches!(s.policy(), LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr);
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !realtime {
        return err("process.scheduler.priority", "can only be set for SCHED_FIFO or SCHED_RR");
    }
    if realtime && !(1..=99).contains(&priority) {
        return err("process.scheduler.priority", format!("{priority} is outside 1..99 for a real-time policy"));
    }
    let dl = [s.runtime(), s.deadline(), s.period()].iter().any(|v| v.unwrap_or(0) != 0);
    if dl && *s.policy() != LinuxSchedulerPolicy::SchedDeadline {
        return err("process.scheduler", "runtime, deadline and period can only be set for SCHED_DEADLINE");
    }
    if *s.policy() == LinuxSchedulerPolicy::SchedIso {
        return err("process.scheduler.policy", "SCHED_ISO does not exist in mainline Linux");
    }
    Ok(())
}

pub fn apply_scheduler(s: &Scheduler) -> Result<(), InitError> {
    let mut attr = SchedAttr {
        policy: policy_number(*s.policy()),
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    for f in s.flags().as_deref().unwrap_or(&[]) {
        attr.flags |= flag_bit(*f);
    }
    sched_setattr(&mut attr).map_err(|e| {
        // sched_setattr(2): SCHED_DEADLINE wants every CPU of the system in the thread's
        // affinity, which a cpuset (linux.resources.cpu.cpus) narrows. runc's words.
        let deadline = attr.policy == policy_number(LinuxSchedulerPolicy::SchedDeadline);
        let op = if e.raw_os_error() == Some(libc::EPERM) && deadline && !has_every_online_cpu() {
            "sched_setattr: process scheduler can't be used together with AllowedCPUs (linux.resources.cpu.cpus)"
        } else {
            "sched_setattr"
        };
        applying("process.scheduler").doing(op).io()(e)
    })
}

fn has_every_online_cpu() -> bool {
    let online = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN).ok().flatten().unwrap_or(0);
    current_affinity()
        .is_ok_and(|set| (0..MAX_CPUS).filter(|c| set.is_set(*c).unwrap_or(false)).count() as i64 >= online)
}

// ---- I/O priority ------------------------------------------------------------------------

const IOPRIO_CLASS_SHIFT: i32 = 13;

pub fn validate_io_priority(process: &Process) -> Result<(), FieldError> {
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return err("process.ioPriority.priority", format!("{} is outside 0..7", io.priority()));
        }
    }
    Ok(())
}

pub fn apply_io_priority(process: &Process) -> Result<(), InitError> {
    let Some(io) = process.io_priority() else { return Ok(()) };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << IOPRIO_CLASS_SHIFT) | io.priority() as i32;
    ioprio_set_self(value).map_err(applying("process.ioPriority").doing("ioprio_set").io())
}

// ---- CPU and NUMA node lists -------------------------------------------------------------

/// Parses a kernel list such as "0-3,7" into the sorted set of numbers it names.
pub fn parse_list(s: &str, limit: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| format!("{s:?} is not a list like \"0-3,7\""))?;
        let hi: usize = hi.parse().map_err(|_| format!("{s:?} is not a list like \"0-3,7\""))?;
        if lo > hi {
            return Err(format!("{s:?}: range {lo}-{hi} is reversed"));
        }
        if hi >= limit {
            return Err(format!("{s:?}: {hi} is above the limit {}", limit - 1));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;
const MAX_NODES: usize = 1024;

pub fn validate_cpu_affinity(process: &Process) -> Result<(), FieldError> {
    if let Some(a) = process.exec_cpu_affinity() {
        if let Some(s) = a.initial() {
            parse_list(s, MAX_CPUS).or_else(|m| err("process.execCPUAffinity.initial", m))?;
        }
        if let Some(s) = a.cpu_affinity_final() {
            parse_list(s, MAX_CPUS).or_else(|m| err("process.execCPUAffinity.final", m))?;
        }
    }
    Ok(())
}

/// The current thread's CPU affinity, to restore it later.
pub fn current_affinity() -> std::io::Result<CpuSet> {
    Ok(nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?)
}

pub fn set_affinity(set: &CpuSet) -> std::io::Result<()> {
    Ok(nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)?)
}

pub fn cpu_set(list: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for cpu in parse_list(list, MAX_CPUS)? {
        // parse_list keeps cpu below CPU_SETSIZE, the size of a CpuSet.
        set.set(cpu).map_err(|e| format!("{list:?}: cpu {cpu}: {e}"))?;
    }
    Ok(set)
}

/// Before execve, once the process is in its cgroup. `exec_affinity` is the
/// `execCPUAffinity` of a process joining the container, `None` for the init (runtime-spec:
/// it does not apply to the init). `final` when given; with only `initial`, nothing (the
/// spec: the runtime SHOULD NOT change it after the move into the cgroup); otherwise every
/// CPU, which the kernel narrows to the cgroup's cpuset, so that the process does not keep
/// the affinity the runtime was started with (a pinned shim, `taskset`): runc 1.2 on resets
/// it the same way. Only a `final` that cannot be applied is an error: a failed reset
/// leaves the affinity the process has, with a warning, as in runc.
pub fn apply_final_affinity(exec_affinity: Option<&ExecCPUAffinity>) -> Result<(), InitError> {
    let field = "process.execCPUAffinity.final";
    match exec_affinity.map(|a| (a.cpu_affinity_final(), a.initial())) {
        Some((Some(f), _)) => {
            let set = cpu_set(f).map_err(|m| InitError::invalid(field, m))?;
            return set_affinity(&set).map_err(applying(field).doing("sched_setaffinity").io());
        }
        Some((None, Some(_))) => return Ok(()),
        _ => {}
    }
    let mut all = CpuSet::new();
    for cpu in 0..MAX_CPUS {
        // cpu is below CPU_SETSIZE, the size of a CpuSet.
        let _ = all.set(cpu);
    }
    if let Err(e) = set_affinity(&all) {
        eprintln!("berth: warning: resetting the CPU affinity failed, the process keeps the runtime's: {e}");
    }
    Ok(())
}

/// `set` as a hexadecimal mask, CPU 0 the lowest bit (as runc's debug log prints it).
pub fn mask_hex(set: &CpuSet) -> String {
    let words: Vec<u64> = (0..MAX_CPUS / 64)
        .map(|w| (0..64).filter(|b| set.is_set(w * 64 + b).unwrap_or(false)).fold(0u64, |m, b| m | 1 << b))
        .collect();
    let top = words.iter().rposition(|w| *w != 0).unwrap_or(0);
    let mut text = format!("0x{:x}", words[top]);
    for w in words[..top].iter().rev() {
        text.push_str(&format!("{w:016x}"));
    }
    text
}

// ---- memory policy -----------------------------------------------------------------------

fn mode_number(m: MemoryPolicyModeType) -> i32 {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn mode_flag(f: MemoryPolicyFlagType) -> i32 {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
    }
}

pub fn validate_memory_policy(p: &LinuxMemoryPolicy) -> Result<(), FieldError> {
    let nodes = p.nodes().as_deref().map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = nodes {
        parse_list(n, MAX_NODES).or_else(|m| err("linux.memoryPolicy.nodes", m))?;
    }
    match (p.mode(), nodes) {
        (MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal, Some(_)) => {
            err("linux.memoryPolicy.nodes", format!("must be empty with mode {}", p.mode()))
        }
        (
            MemoryPolicyModeType::MpolBind
            | MemoryPolicyModeType::MpolInterleave
            | MemoryPolicyModeType::MpolPreferredMany
            | MemoryPolicyModeType::MpolWeightedInterleave,
            None,
        ) => err("linux.memoryPolicy.nodes", format!("mode {} needs nodes", p.mode())),
        _ => Ok(()),
    }
}

pub fn apply_memory_policy(p: &LinuxMemoryPolicy) -> Result<(), InitError> {
    let mut mask = [0u64; MAX_NODES / 64];
    if let Some(n) = p.nodes().as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        for node in parse_list(n, MAX_NODES).map_err(|m| InitError::invalid("linux.memoryPolicy.nodes", m))? {
            mask[node / 64] |= 1 << (node % 64);
        }
    }
    let mut mode = mode_number(p.mode());
    for f in p.flags().as_deref().unwrap_or(&[]) {
        mode |= mode_flag(*f);
    }
    let empty = mask.iter().all(|w| *w == 0);
    set_mempolicy(mode, if empty { None } else { Some(&mask) })
        .map_err(applying("linux.memoryPolicy").doing("set_mempolicy").io())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_ranges_and_refuse_garbage() {
        assert_eq!(parse_list("0-2,5", 64).unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("3", 64).unwrap(), vec![3]);
        assert!(parse_list("2-1", 64).is_err());
        assert!(parse_list("a", 64).is_err());
        assert!(parse_list("64", 64).is_err());
        assert!(parse_list("", 64).is_err());
    }

    #[test]
    fn masks_print_cpu_zero_as_the_lowest_bit() {
        assert_eq!(mask_hex(&cpu_set("1").unwrap()), "0x2");
        assert_eq!(mask_hex(&cpu_set("0-1").unwrap()), "0x3");
        assert_eq!(mask_hex(&cpu_set("0,4").unwrap()), "0x11");
        assert_eq!(mask_hex(&cpu_set("64").unwrap()), "0x10000000000000000");
        assert_eq!(mask_hex(&CpuSet::new()), "0x0");
    }
}
