// Preloaded (node --import) into every service `perimeter up` starts. The supervisor holds the write end of the
// child's stdin; when the supervisor is gone (even killed with SIGKILL, which it cannot clean up after) the pipe
// closes and the service stops as on SIGTERM: closing its listeners and its audit log. Linux has a parent-death
// signal for this, but Node does not expose it. Once only: a second SIGTERM means "exit now" to the CLI.
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.kill(process.pid, "SIGTERM");
};
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
