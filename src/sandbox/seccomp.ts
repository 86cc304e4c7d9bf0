// The seccomp filter every bubblewrap sandbox runs under, written as a classic-BPF program here rather than taken
// from libseccomp: no native addon, no build step, and the whole policy fits on one screen. bwrap loads it with
// `--seccomp FD` (and sets no_new_privs) just before it executes the task.
//
// Policy: allow by default, deny a list of syscalls that widen the kernel attack surface or escape the namespaces
// (io_uring, ptrace, bpf, keyrings, the mount family, namespace creation and joining, kexec, modules, perf,
// userfaultfd), refuse new namespaces through clone() flags, answer clone3 with ENOSYS (its flags sit behind a
// pointer a filter cannot read; libc then falls back to clone), and with the network off refuse every socket
// family except AF_UNIX. A foreign architecture (i386 or x32 system calls on x86_64) is killed: its numbers
// differ and would slip past the list.

export type SeccompArchitecture = "x86_64" | "aarch64";

/** A syscall the filter refuses, with its number on each architecture (null: the call does not exist there). */
interface DeniedSyscall {
  readonly name: string;
  readonly x86_64: number | null;
  readonly aarch64: number | null;
}

// Numbers from the kernel's syscall tables (arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/
// unistd.h, which aarch64 uses). Since 424 both tables share numbers.
const DENIED: readonly DeniedSyscall[] = [
  { name: "io_uring_setup", x86_64: 425, aarch64: 425 },
  { name: "io_uring_enter", x86_64: 426, aarch64: 426 },
  { name: "io_uring_register", x86_64: 427, aarch64: 427 },
  { name: "ptrace", x86_64: 101, aarch64: 117 },
  { name: "process_vm_readv", x86_64: 310, aarch64: 270 },
  { name: "process_vm_writev", x86_64: 311, aarch64: 271 },
  { name: "bpf", x86_64: 321, aarch64: 280 },
  { name: "keyctl", x86_64: 250, aarch64: 219 },
  { name: "add_key", x86_64: 248, aarch64: 217 },
  { name: "request_key", x86_64: 249, aarch64: 218 },
  { name: "mount", x86_64: 165, aarch64: 40 },
  { name: "umount2", x86_64: 166, aarch64: 39 },
  { name: "pivot_root", x86_64: 155, aarch64: 41 },
  { name: "chroot", x86_64: 161, aarch64: 51 },
  { name: "open_tree", x86_64: 428, aarch64: 428 },
  { name: "move_mount", x86_64: 429, aarch64: 429 },
  { name: "fsopen", x86_64: 430, aarch64: 430 },
  { name: "fsconfig", x86_64: 431, aarch64: 431 },
  { name: "fsmount", x86_64: 432, aarch64: 432 },
  { name: "fspick", x86_64: 433, aarch64: 433 },
  { name: "mount_setattr", x86_64: 442, aarch64: 442 },
  { name: "open_tree_attr", x86_64: 467, aarch64: 467 },
  { name: "unshare", x86_64: 272, aarch64: 97 },
  { name: "setns", x86_64: 308, aarch64: 268 },
  { name: "kexec_load", x86_64: 246, aarch64: 104 },
  { name: "kexec_file_load", x86_64: 320, aarch64: 294 },
  { name: "init_module", x86_64: 175, aarch64: 105 },
  { name: "finit_module", x86_64: 313, aarch64: 273 },
  { name: "delete_module", x86_64: 176, aarch64: 106 },
  { name: "perf_event_open", x86_64: 298, aarch64: 241 },
  { name: "userfaultfd", x86_64: 323, aarch64: 282 },
  { name: "open_by_handle_at", x86_64: 304, aarch64: 265 },
  { name: "name_to_handle_at", x86_64: 303, aarch64: 264 },
  { name: "fanotify_init", x86_64: 300, aarch64: 262 },
  { name: "swapon", x86_64: 167, aarch64: 224 },
  { name: "swapoff", x86_64: 168, aarch64: 225 },
  { name: "reboot", x86_64: 169, aarch64: 142 },
  { name: "acct", x86_64: 163, aarch64: 89 },
  { name: "quotactl", x86_64: 179, aarch64: 60 },
  { name: "quotactl_fd", x86_64: 443, aarch64: 443 },
  { name: "syslog", x86_64: 103, aarch64: 116 },
  { name: "lookup_dcookie", x86_64: 212, aarch64: 18 },
  { name: "iopl", x86_64: 172, aarch64: null },
  { name: "ioperm", x86_64: 173, aarch64: null },
  { name: "uselib", x86_64: 134, aarch64: null },
  { name: "_sysctl", x86_64: 156, aarch64: null },
];

const SOCKET = { x86_64: 41, aarch64: 198 } as const;
const CLONE = { x86_64: 56, aarch64: 220 } as const;
const CLONE3 = { x86_64: 435, aarch64: 435 } as const;

/** The names the filter refuses outright (for documentation and the result's `limits`). */
export const DENIED_SYSCALLS: readonly string[] = [...DENIED.map((entry) => entry.name), "clone(namespace flags)", "clone3 (ENOSYS)"];

const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
/** x86_64 marks x32-ABI system calls with this bit; they would otherwise bypass every number below. */
const X32_SYSCALL_BIT = 0x40000000;

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;

// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
// (CLONE_NEWTIME shares its bit with the exit signal in clone(); only unshare/clone3 accept it, and both are denied.)
const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const EPERM = 1;
export const ENOSYS = 38;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; } (little-endian on both).
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const offsetOfArgumentLow = (index: number) => 16 + 8 * index;

// Classic BPF opcodes used here.
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;

export interface BpfInstruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

type Target = number | string; // a relative skip count, or a label resolved by the assembler

interface PendingInstruction {
  code: number;
  jt: Target;
  jf: Target;
  k: number;
}

/** A tiny assembler: jumps name labels; resolution checks the 8-bit forward-only jump range of classic BPF. */
function createAssembler() {
  const instructions: PendingInstruction[] = [];
  const labels = new Map<string, number>();
  return {
    label(name: string) {
      if (labels.has(name)) throw new Error(`seccomp: label ${name} defined twice`);
      labels.set(name, instructions.length);
    },
    load(offset: number) {
      instructions.push({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: offset });
    },
    jumpIfEqual(value: number, whenTrue: Target, whenFalse: Target = 0) {
      instructions.push({ code: BPF_JMP_JEQ_K, jt: whenTrue, jf: whenFalse, k: value >>> 0 });
    },
    jumpIfAnyBit(mask: number, whenTrue: Target, whenFalse: Target = 0) {
      instructions.push({ code: BPF_JMP_JSET_K, jt: whenTrue, jf: whenFalse, k: mask >>> 0 });
    },
    ret(value: number) {
      instructions.push({ code: BPF_RET_K, jt: 0, jf: 0, k: value >>> 0 });
    },
    assemble(): BpfInstruction[] {
      const resolve = (target: Target, at: number): number => {
        if (typeof target === "number") return target;
        const position = labels.get(target);
        if (position === undefined) throw new Error(`seccomp: unknown label ${target}`);
        const skip = position - at - 1;
        if (skip < 0 || skip > 255) throw new Error(`seccomp: jump to ${target} out of range (${skip})`);
        return skip;
      };
      return instructions.map((instruction, index) => ({
        code: instruction.code,
        k: instruction.k,
        jt: resolve(instruction.jt, index),
        jf: resolve(instruction.jf, index),
      }));
    },
  };
}

export interface SeccompPolicy {
  /** "none": only AF_UNIX sockets. "proxy": AF_UNIX, AF_INET and AF_INET6 (the namespace has only loopback). */
  readonly network: "none" | "proxy";
}

/** The filter as instructions (tests run them through an interpreter; bwrap gets `seccompProgramBytes`). */
export function buildSeccompProgram(policy: SeccompPolicy): BpfInstruction[] {
  const program = createAssembler();
  const deny = SECCOMP_RET_ERRNO | EPERM;
  program.load(OFFSET_ARCH);
  program.jumpIfEqual(AUDIT_ARCH.x86_64, "x86_64");
  program.jumpIfEqual(AUDIT_ARCH.aarch64, "aarch64");
  program.ret(SECCOMP_RET_KILL_PROCESS);

  for (const architecture of ["x86_64", "aarch64"] as const) {
    program.label(architecture);
    program.load(OFFSET_NR);
    if (architecture === "x86_64") program.jumpIfAnyBit(X32_SYSCALL_BIT, "kill");
    for (const entry of DENIED) {
      const number = entry[architecture];
      if (number !== null) program.jumpIfEqual(number, "deny");
    }
    program.jumpIfEqual(CLONE3[architecture], "nosys");
    program.jumpIfEqual(CLONE[architecture], "clone");
    program.jumpIfEqual(SOCKET[architecture], "socket");
    program.ret(SECCOMP_RET_ALLOW);
  }

  // clone(flags, ...): flags are the first argument on both architectures (the low word holds every CLONE_NEW*).
  program.label("clone");
  program.load(offsetOfArgumentLow(0));
  program.jumpIfAnyBit(CLONE_NAMESPACE_FLAGS, "deny");
  program.ret(SECCOMP_RET_ALLOW);

  // socket(domain, type, protocol): `domain` is an int, so the low word decides.
  program.label("socket");
  program.load(offsetOfArgumentLow(0));
  program.jumpIfEqual(AF_UNIX, "allow");
  if (policy.network === "proxy") {
    program.jumpIfEqual(AF_INET, "allow");
    program.jumpIfEqual(AF_INET6, "allow");
  }
  program.label("deny");
  program.ret(deny);
  program.label("allow");
  program.ret(SECCOMP_RET_ALLOW);
  program.label("nosys");
  program.ret(SECCOMP_RET_ERRNO | ENOSYS);
  program.label("kill");
  program.ret(SECCOMP_RET_KILL_PROCESS);
  return program.assemble();
}

/** `struct sock_filter[]` in the host's byte order (little-endian on x86_64 and aarch64), as bwrap reads it. */
export function seccompProgramBytes(instructions: readonly BpfInstruction[]): Buffer {
  const buffer = Buffer.alloc(instructions.length * 8);
  instructions.forEach((instruction, index) => {
    const at = index * 8;
    buffer.writeUInt16LE(instruction.code, at);
    buffer.writeUInt8(instruction.jt, at + 2);
    buffer.writeUInt8(instruction.jf, at + 3);
    buffer.writeUInt32LE(instruction.k >>> 0, at + 4);
  });
  return buffer;
}

/** The architecture of this process, as the filter names it; other architectures are refused with a clear message. */
export function hostSeccompArchitecture(arch: string = process.arch): SeccompArchitecture {
  if (arch === "x64") return "x86_64";
  if (arch === "arm64") return "aarch64";
  throw new Error(`the sandbox's seccomp filter covers x86_64 and aarch64; this host is ${arch}`);
}

/** Syscall numbers used by tests that probe the filter. */
export function syscallNumber(name: string, architecture: SeccompArchitecture): number {
  if (name === "socket") return SOCKET[architecture];
  if (name === "clone") return CLONE[architecture];
  if (name === "clone3") return CLONE3[architecture];
  const entry = DENIED.find((candidate) => candidate.name === name);
  const number = entry?.[architecture];
  if (number === undefined || number === null) throw new Error(`no number for ${name} on ${architecture}`);
  return number;
}

export const AUDIT_ARCHITECTURES = AUDIT_ARCH;
