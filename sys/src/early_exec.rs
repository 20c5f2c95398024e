//! The berth binary's first instructions (`-Wl,-e,berth_entry`, runtime/build.rs). A
//! command that enters a container (create, run, exec) re-executes from a read-only view of
//! the binary (`berth::sealed`, CVE-2019-5736); done here, it happens before the C library
//! and Rust's runtime start, so the image being left does not pay their start-up for
//! nothing. On a virtual machine that start-up is most of a process's cost: the C library
//! probes CPU features and caches with CPUID, and each CPUID traps to the hypervisor
//! (~7 µs on the development VM, ~0.57 ms per static glibc process).
//!
//! Anything unusual (no /proc, open_tree or mount_setattr refused, a command line the scan
//! does not recognise) falls through to the C library's `_start`, and
//! `berth::sealed::reexec_protected` decides as before: this path may only save a re-exec
//! that the program would make anyway, never skip one. A needless re-exec (a container
//! named "run" in `berth state run`) costs time, nothing else.
//!
//! This runs before the static-pie binary has relocated itself and before thread-local
//! storage exists: the code uses no static holding a pointer, calls no C library function
//! (memcpy, memcmp and friends are IFUNCs, not yet resolved), cannot panic, and makes its
//! system calls with inline asm. Every file descriptor it opens is close-on-exec and closed
//! on every path, so the program starts with the descriptors its caller gave it.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl berth_entry",
    ".type berth_entry,@function",
    "berth_entry:",
    "endbr64",
    // The kernel's entry state: rsp points at argc, rdx is the exit hook (none for a static
    // binary). Both are handed to the C library's _start unchanged.
    "mov r12, rsp",
    "mov r13, rdx",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {early}",
    "mov rsp, r12",
    "mov rdx, r13",
    "xor r12d, r12d",
    "xor r13d, r13d",
    "jmp _start",
    ".size berth_entry, .-berth_entry",
    early = sym berth_early_reexec,
);

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::asm;

    const SYS_CLOSE: usize = 3;
    const SYS_FCNTL: usize = 72;
    const SYS_FSTATFS: usize = 138;
    const SYS_OPEN: usize = 2;
    const SYS_EXECVEAT: usize = 322;
    const SYS_OPEN_TREE: usize = 428;
    const SYS_MOUNT_SETATTR: usize = 442;

    const O_RDONLY_CLOEXEC: usize = 0o2000000;
    const AT_EMPTY_PATH: usize = 0x1000;
    const OPEN_TREE_CLONE: usize = 1;
    const OPEN_TREE_CLOEXEC: usize = 0o2000000;
    const F_GET_SEALS: usize = 1034;
    /// F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, as `berth::sealed` checks.
    const SEALS: isize = 0xf;
    const ST_RDONLY: u64 = 1;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;

    /// A raw system call; returns the kernel's value (negative errno on failure).
    ///
    /// # Safety
    /// The arguments must be what system call `n` expects (pointers valid for it).
    #[inline(always)]
    unsafe fn syscall(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes arguments valid for `n`; the syscall instruction
        // clobbers rcx and r11 only, and uses no stack.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a1,
                in("rsi") a2,
                in("rdx") a3,
                in("r10") a4,
                in("r8") a5,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// Whether the NUL-terminated `arg` is exactly `word`, read a byte at a time (a loop the
    /// compiler could turn into a memcmp call would jump through an unrelocated IFUNC).
    ///
    /// # Safety
    /// `arg` points at a NUL-terminated string.
    unsafe fn is(arg: *const u8, word: &[u8]) -> bool {
        let mut i = 0;
        while i < word.len() {
            // SAFETY: bytes up to and including the terminating NUL are readable, and a
            // mismatch (the NUL included) stops the loop first.
            let b = unsafe { core::ptr::read_volatile(arg.wrapping_add(i)) };
            if b != word[i] {
                return false;
            }
            i += 1;
        }
        // SAFETY: all of `word` matched, so the string is at least that long plus its NUL.
        unsafe { core::ptr::read_volatile(arg.wrapping_add(word.len())) == 0 }
    }

    /// Whether any argument names a command that enters a container: a superset of the
    /// commands for which the program re-executes (`Create`, `Run`, `Exec` in the CLI).
    ///
    /// # Safety
    /// `argv` holds `argc` valid NUL-terminated strings.
    unsafe fn enters_container(argc: usize, argv: *const *const u8) -> bool {
        let mut i = 1;
        while i < argc {
            // SAFETY: i < argc.
            let arg = unsafe { core::ptr::read_volatile(argv.wrapping_add(i)) };
            // SAFETY: argv's entries are NUL-terminated strings.
            if !arg.is_null() && unsafe { is(arg, b"create") || is(arg, b"run") || is(arg, b"exec") } {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether `exe` is already an image nobody can write: sealed, or on a read-only mount.
    fn protected(exe: usize) -> bool {
        // SAFETY: F_GET_SEALS takes no pointer.
        let seals = unsafe { syscall(SYS_FCNTL, exe, F_GET_SEALS, 0, 0, 0) };
        if seals >= 0 && seals & SEALS == SEALS {
            return true;
        }
        // struct statfs on x86_64: 15 words, f_flags the eleventh.
        let mut buf = core::mem::MaybeUninit::<[u64; 15]>::uninit();
        // SAFETY: buf is 120 bytes, the size of struct statfs.
        let r = unsafe { syscall(SYS_FSTATFS, exe, buf.as_mut_ptr() as usize, 0, 0, 0) };
        // SAFETY: the kernel filled the whole struct when it returned 0.
        r == 0 && unsafe { buf.assume_init_ref()[10] } & ST_RDONLY != 0
    }

    /// Called from `berth_entry` with the kernel's initial stack; returns only when the
    /// program is to start normally.
    ///
    /// # Safety
    /// `sp` is the process's initial stack pointer (argc, argv, NULL, envp, NULL).
    // A fixed name: runtime/text-order.txt places it with the code `create` runs.
    #[no_mangle]
    pub(super) unsafe extern "C" fn berth_early_reexec(sp: *const usize) {
        // SAFETY: the kernel's initial stack layout.
        let argc = unsafe { core::ptr::read_volatile(sp) };
        let argv = sp.wrapping_add(1) as *const *const u8;
        let envp = argv.wrapping_add(argc + 1);
        // SAFETY: argv holds argc strings.
        if !unsafe { enters_container(argc, argv) } {
            return;
        }
        let path = b"/proc/self/exe\0";
        // SAFETY: a NUL-terminated path.
        let exe = unsafe { syscall(SYS_OPEN, path.as_ptr() as usize, O_RDONLY_CLOEXEC, 0, 0, 0) };
        if exe < 0 {
            return;
        }
        let exe = exe as usize;
        if protected(exe) {
            // SAFETY: our own descriptor.
            unsafe { syscall(SYS_CLOSE, exe, 0, 0, 0, 0) };
            return;
        }
        let empty = b"\0";
        // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH: the file `exe` itself.
        let tree = unsafe {
            syscall(
                SYS_OPEN_TREE,
                exe,
                empty.as_ptr() as usize,
                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH,
                0,
                0,
            )
        };
        // SAFETY: our own descriptor.
        unsafe { syscall(SYS_CLOSE, exe, 0, 0, 0, 0) };
        if tree < 0 {
            return;
        }
        let tree = tree as usize;
        // struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
        let attr: [u64; 4] = [MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0];
        // SAFETY: attr is a 32-byte struct mount_attr; the path is empty with AT_EMPTY_PATH.
        let r = unsafe {
            syscall(SYS_MOUNT_SETATTR, tree, empty.as_ptr() as usize, AT_EMPTY_PATH, attr.as_ptr() as usize, 32)
        };
        if r == 0 {
            // SAFETY: argv and envp are the kernel's NULL-terminated arrays; on success
            // this does not return.
            unsafe {
                syscall(SYS_EXECVEAT, tree, empty.as_ptr() as usize, argv as usize, envp as usize, AT_EMPTY_PATH)
            };
        }
        // SAFETY: our own descriptor.
        unsafe { syscall(SYS_CLOSE, tree, 0, 0, 0, 0) };
    }
}

#[cfg(target_arch = "x86_64")]
use imp::berth_early_reexec;
