// The seccomp program, run through a classic-BPF interpreter on synthetic seccomp_data: every decision the filter
// makes is checked for both architectures without loading it (the sandbox tests load it for real).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AUDIT_ARCHITECTURES,
  DENIED_SYSCALLS,
  ENOSYS,
  EPERM,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  buildSeccompProgram,
  seccompProgramBytes,
  syscallNumber,
} from "./seccomp.ts";
import type { BpfInstruction, SeccompArchitecture } from "./seccomp.ts";

/** Evaluates a classic-BPF seccomp program (the subset the kernel accepts for seccomp) on one system call. */
function evaluate(program: readonly BpfInstruction[], data: { arch: number; nr: number; args?: number[] }): number {
  const memory = Buffer.alloc(64);
  memory.writeInt32LE(data.nr, 0);
  memory.writeUInt32LE(data.arch >>> 0, 4);
  (data.args ?? []).forEach((value, index) => memory.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), 16 + index * 8));
  let accumulator = 0;
  let pc = 0;
  for (let steps = 0; steps < 10000; steps++) {
    const instruction = program[pc];
    assert.ok(instruction !== undefined, `fell off the program at ${pc}`);
    switch (instruction.code) {
      case 0x20: // ld [k]
        accumulator = memory.readUInt32LE(instruction.k);
        pc += 1;
        break;
      case 0x15: // jeq #k
        pc += 1 + (accumulator === instruction.k ? instruction.jt : instruction.jf);
        break;
      case 0x45: // jset #k
        pc += 1 + ((accumulator & instruction.k) !== 0 ? instruction.jt : instruction.jf);
        break;
      case 0x06: // ret #k
        return instruction.k >>> 0;
      default:
        assert.fail(`unexpected opcode ${instruction.code}`);
    }
  }
  assert.fail("program did not return");
}

const ARCHITECTURES: SeccompArchitecture[] = ["x86_64", "aarch64"];
const denied = (errno: number) => (SECCOMP_RET_ERRNO | errno) >>> 0;

for (const architecture of ARCHITECTURES) {
  const arch = AUDIT_ARCHITECTURES[architecture];
  const program = buildSeccompProgram({ network: "none" });
  const call = (name: string, args: number[] = []) => evaluate(program, { arch, nr: syscallNumber(name, architecture), args });

  test(`seccomp (${architecture}): every listed dangerous syscall returns EPERM`, () => {
    for (const name of DENIED_SYSCALLS) {
      if (name.includes("(")) continue;
      if (architecture === "aarch64" && ["iopl", "ioperm", "uselib", "_sysctl"].includes(name)) continue;
      assert.equal(call(name), denied(EPERM), name);
    }
  });

  test(`seccomp (${architecture}): ordinary syscalls are allowed`, () => {
    // read, write, openat, execve on each architecture.
    const ordinary = architecture === "x86_64" ? [0, 1, 257, 59] : [63, 64, 56, 221];
    for (const nr of ordinary) assert.equal(evaluate(program, { arch, nr }), SECCOMP_RET_ALLOW, String(nr));
  });

  test(`seccomp (${architecture}): clone with a namespace flag is refused, a plain fork-style clone allowed`, () => {
    const CLONE_NEWUSER = 0x10000000;
    const CLONE_NEWNET = 0x40000000;
    const CLONE_NEWNS = 0x00020000;
    const SIGCHLD = 17;
    assert.equal(call("clone", [SIGCHLD]), SECCOMP_RET_ALLOW);
    assert.equal(call("clone", [0x003d0f00]), SECCOMP_RET_ALLOW); // pthread_create's flags
    for (const flag of [CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS]) assert.equal(call("clone", [flag | SIGCHLD]), denied(EPERM));
  });

  test(`seccomp (${architecture}): clone3 answers ENOSYS so libc falls back to the inspectable clone`, () => {
    assert.equal(call("clone3"), denied(ENOSYS));
  });

  test(`seccomp (${architecture}): with the network off only AF_UNIX sockets can be created`, () => {
    assert.equal(call("socket", [1, 1, 0]), SECCOMP_RET_ALLOW);
    for (const family of [2, 10, 16, 17, 40]) assert.equal(call("socket", [family, 1, 0]), denied(EPERM), `family ${family}`);
    // High bits of the 64-bit register do not smuggle a different family past the check.
    assert.equal(call("socket", [2 + 2 ** 32, 1, 0]), denied(EPERM));
  });

  test(`seccomp (${architecture}): in proxy mode AF_INET/AF_INET6 are allowed but netlink and packet sockets are not`, () => {
    const proxy = buildSeccompProgram({ network: "proxy" });
    const socket = (family: number) => evaluate(proxy, { arch, nr: syscallNumber("socket", architecture), args: [family, 1, 0] });
    assert.equal(socket(1), SECCOMP_RET_ALLOW);
    assert.equal(socket(2), SECCOMP_RET_ALLOW);
    assert.equal(socket(10), SECCOMP_RET_ALLOW);
    assert.equal(socket(16), denied(EPERM));
    assert.equal(socket(17), denied(EPERM));
  });
}

test("seccomp: a foreign architecture (i386 compat calls on x86_64) kills the process", () => {
  const program = buildSeccompProgram({ network: "none" });
  const AUDIT_ARCH_I386 = 0x40000003;
  assert.equal(evaluate(program, { arch: AUDIT_ARCH_I386, nr: 1 }), SECCOMP_RET_KILL_PROCESS);
  assert.equal(evaluate(program, { arch: 0xc0000028, nr: 1 }), SECCOMP_RET_KILL_PROCESS); // arm (32-bit)
});

test("seccomp: x32 system calls (bit 30) on x86_64 are killed, not matched against the x86_64 numbers", () => {
  const program = buildSeccompProgram({ network: "none" });
  const x32Ptrace = 0x40000000 + 101;
  assert.equal(evaluate(program, { arch: AUDIT_ARCHITECTURES.x86_64, nr: x32Ptrace }), SECCOMP_RET_KILL_PROCESS);
});

test("seccomp: the serialized program is 8 bytes per instruction, little-endian, within the kernel's 4096-instruction cap", () => {
  const program = buildSeccompProgram({ network: "proxy" });
  const bytes = seccompProgramBytes(program);
  assert.equal(bytes.length, program.length * 8);
  assert.ok(program.length < 4096);
  const first = program[0] as BpfInstruction;
  assert.equal(bytes.readUInt16LE(0), first.code);
  assert.equal(bytes.readUInt32LE(4), first.k);
});
