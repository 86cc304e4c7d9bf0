// The seccomp profile of the Compose sandbox runner. Docker's default profile lets a process without CAP_SYS_ADMIN
// neither unshare() nor clone() new namespaces, which is all bubblewrap needs to build a task's sandbox; the two
// ways around that are CAP_SYS_ADMIN (root-equivalent, refused here) or a profile that permits namespaces. This is
// the second: everything is allowed except the system calls container escapes and kernel exploits lean on, which
// neither bubblewrap nor an ordinary build needs. Only the native 64-bit ABIs are listed, so a 32-bit or x32 system
// call (a classic filter bypass) fails the architecture check instead of slipping past the name list.

const DENIED = [
  // kernel modules, kexec, reboot, swap, clocks, accounting
  "acct", "create_module", "delete_module", "finit_module", "get_kernel_syms", "init_module", "kexec_file_load",
  "kexec_load", "query_module", "reboot", "swapoff", "swapon", "clock_adjtime", "clock_settime", "settimeofday",
  "stime", "syslog", "_sysctl", "sysfs", "ustat", "uselib", "nfsservctl", "lookup_dcookie", "quotactl", "quotactl_fd",
  // kernel keyrings, BPF, perf, io_uring, userfaultfd: large attack surface, no use in a build sandbox
  "add_key", "keyctl", "request_key", "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
  "userfaultfd", "fanotify_init",
  // reading or writing other processes, escaping through file handles
  "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "open_by_handle_at", "name_to_handle_at",
  // the new mount API (bubblewrap uses mount(2)); port I/O; NUMA page moves
  "fsconfig", "fsmount", "fsopen", "fspick", "mount_setattr", "move_mount", "open_tree", "ioperm", "iopl", "move_pages",
];

export const SANDBOX_SECCOMP_PROFILE = {
  defaultAction: "SCMP_ACT_ALLOW",
  archMap: [
    { architecture: "SCMP_ARCH_X86_64", subArchitectures: [] },
    { architecture: "SCMP_ARCH_AARCH64", subArchitectures: [] },
  ],
  syscalls: [{ names: [...new Set(DENIED)].sort(), action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
};
