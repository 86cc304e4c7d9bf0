#!/usr/bin/env bash
# Proves the VPS render on a booted systemd (issue 17, docs/vps.md "Proving the VPS render"). As root:
#   1. debootstraps a minimal Debian with what the render needs, once: it is cached under $PERIMETER_NSPAWN_CACHE and
#      each run mounts a writable overlay over it, so the cache stays as debootstrap left it;
#   2. renders CONFIG (default examples/vps.yaml) with `perimeter render -t vps`, installs this repository read-only
#      at /opt/perimeter (Node 24 from its node_modules) and a STAND-IN for the Hermes gateway where the agent's unit
#      looks for Hermes (the real one is not on this network);
#   3. boots the tree with `systemd-nspawn --boot --private-network` (loopback only: nothing can leave), enters it
#      with nsenter (the host's PID 1 is not systemd here, so there is no machined for machinectl/systemd-run -M),
#      runs `perimeter host apply` there, fills the env files as the operator would and restarts the services;
#   4. checks `systemctl is-active` and the restart count of every rendered unit (table with systemd-analyze
#      security's exposure), a request through each socket-activated proxy, that the agent's own unit is reset on
#      the dashboard, mcp-guard's admin listener and the feeds on loopback (the firewall's loopback wall; the same
#      ports answer a process outside the unit), that it is refused every non-loopback address (first by the firewall's uid rule; then, with the firewall's table removed, with
#      EPERM for a datagram from the unit's IPAddressDeny filter, while the same datagram from outside the unit is
#      sent) and reaches the egress proxy, llm-proxy and mcp-guard on loopback, that host apply and `perimeter verify
#      host` report host.agent-ip-filter PASS, and that a second apply changes nothing. PERIMETER_NSPAWN_BPF=0 boots
#      without cgroup BPF instead and expects both to report FAIL (the unit's IPAddressDeny silently not enforced).
# Exits non-zero on any failure. Every step is time-bounded.
#   sudo scripts/vps-nspawn-proof.sh [CONFIG]
# Environment: PERIMETER_NSPAWN_CACHE (/var/cache/perimeter-nspawn), PERIMETER_NSPAWN_SUITE (this host's Debian
# codename), PERIMETER_NSPAWN_MIRROR (the Debian mirror this host's apt uses), PERIMETER_NSPAWN_KEEP=1 (leave the
# container's tree and the render in the work directory for a look afterwards), PERIMETER_NSPAWN_HOLD=SECONDS (keep
# the container running that long after the checks, to look inside with the nsenter command it prints).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=$(realpath "${1:-$REPO/examples/vps.yaml}")
NODE="$REPO/node_modules/node/bin/node"
CACHE=${PERIMETER_NSPAWN_CACHE:-/var/cache/perimeter-nspawn}
MACHINE=perimeter-proof
# What the render's host needs (docs/vps.md) plus iproute2 for the proof's dead-end link.
PACKAGES=(systemd systemd-sysv dbus libpam-systemd bubblewrap nftables openssh-server fail2ban python3-systemd unattended-upgrades iproute2 procps)

started=$(date +%s)
failures=()
summary=()
log() { printf '%s\n' "$*"; }
fail() { failures+=("$1"); log "FAIL: $1"; }
die() { log "vps-nspawn-proof: $*" >&2; exit 1; }
since() { awk -v begin="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - begin }'; }

# step NAME SECONDS COMMAND...: runs one step under a time limit and records how long it took.
step() {
  local name=$1 seconds=$2 begin status
  shift 2
  begin=$(date +%s.%N)
  log "== $name"
  set +e
  timeout --kill-after=10 "$seconds" "$@"
  status=$?
  set -e
  local took
  took=$(since "$begin")
  summary+=("$(printf '%-44s %6ss  %s' "$name" "$took" "$([ $status = 0 ] && echo ok || echo "FAILED ($status)")")")
  if [ $status = 124 ]; then fail "$name: timed out after ${seconds}s"; return 124; fi
  [ $status = 0 ] || fail "$name: exit $status"
  return $status
}

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mount and systemd-nspawn need it): sudo $0"
# One proof at a time on a machine: without a systemd on the host, nspawn puts every container's units at the same
# cgroup paths (/payload/system.slice/UNIT), so a second container's systemd would attach its IP filter to the
# first one's units (a run without cgroup BPF was seen passing its unit-filter phase that way) and stop their
# processes.
exec 9>/run/lock/perimeter-nspawn-proof.lock
flock --wait 900 9 || die "another vps-nspawn-proof run holds /run/lock/perimeter-nspawn-proof.lock (waited 15 minutes)"
for tool in debootstrap systemd-nspawn nsenter ssh-keygen; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap systemd-container util-linux openssh-client"
done
[ -x "$NODE" ] || die "$NODE is missing: run npm ci in $REPO first (the units run Perimeter on its pinned Node 24)"
[ -r "$CONFIG" ] || die "no config at $CONFIG"

# The suite and mirror this host's apt already uses, unless told otherwise (no mirror is named in this repository).
SUITE=${PERIMETER_NSPAWN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:?}")}
MIRROR=${PERIMETER_NSPAWN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null | awk -v suite="$SUITE" '$2 == suite { print $1; exit }')}
[ -n "$MIRROR" ] || die "no apt source for $SUITE on this host: set PERIMETER_NSPAWN_MIRROR to a Debian mirror URL"

key=$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
BASE="$CACHE/$SUITE-$key"
WORK=$(mktemp -d /var/tmp/perimeter-nspawn.XXXXXX)
ROOT="$WORK/root"
NSPAWN_PID=""
LEADER=""

cleanup() {
  local status=$?
  if [ -n "${PERIMETER_NSPAWN_HOLD:-}" ] && [ -n "$LEADER" ]; then
    log "holding the container for ${PERIMETER_NSPAWN_HOLD}s: nsenter -t $LEADER -m -u -i -n -p -C bash"
    sleep "$PERIMETER_NSPAWN_HOLD" || true
  fi
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    # SIGTERM asks nspawn to shut the container down cleanly; SIGKILL only if it is still there after 30 s.
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
  fi
  if mountpoint -q "$ROOT" 2>/dev/null; then umount "$ROOT" || umount -l "$ROOT" || true; fi
  if [ "${PERIMETER_NSPAWN_KEEP:-0}" = 1 ]; then log "kept: $WORK"; else rm -rf "$WORK"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the Debian tree, built once --------------------------------------------------------------------------------
build_base() {
  rm -rf "$BASE.partial"
  mkdir -p "$CACHE"
  # debootstrap installs with a policy-rc.d that refuses to start daemons: sshd and fail2ban are not started here.
  debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" "$SUITE" "$BASE.partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; return 1; }
  # An empty machine-id: systemd makes one at the first boot of each copy.
  : > "$BASE.partial/etc/machine-id"
  rm -f "$BASE.partial/var/lib/dbus/machine-id"
  touch "$BASE.partial/.perimeter-complete"
  mv "$BASE.partial" "$BASE"
}
if [ -e "$BASE/.perimeter-complete" ]; then
  log "== Debian $SUITE tree: cached at $BASE"
else
  step "debootstrap $SUITE (cached afterwards)" 1200 bash -c "$(declare -f build_base); $(declare -p BASE CACHE SUITE MIRROR PACKAGES); build_base" || exit 1
fi

# A writable layer over the cached tree, so each run starts from the same Debian and the cache stays clean.
mkdir -p "$WORK/upper" "$WORK/overlay-work" "$ROOT"
if ! mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/overlay-work" "$ROOT" 2>/dev/null; then
  step "copy the Debian tree (no overlayfs)" 300 cp -a "$BASE/." "$ROOT" || exit 1
fi

# --- 2. render, Perimeter and the stand-in -------------------------------------------------------------------------
RENDER="$WORK/render"
step "perimeter render -t vps $(basename "$CONFIG")" 120 "$NODE" "$REPO/bin/perimeter.js" render -c "$CONFIG" -t vps -o "$RENDER" >"$WORK/render.log" 2>&1 || { cat "$WORK/render.log"; exit 1; }
declare -A fact
while IFS='=' read -r name value; do [ -n "$name" ] && fact[$name]=$value; done < <("$NODE" "$REPO/scripts/vps-nspawn/proof.ts" facts "$RENDER")
read -r -a UNITS <<<"${fact[units]}"
AGENT_UNIT=hermes-gateway.service
log "   units: ${UNITS[*]}"

prepare() {
  echo "$MACHINE" >"$ROOT/etc/hostname"
  # Perimeter as host.perimeterExecutable names it: this checkout (bind-mounted read-only) on its pinned Node 24.
  install -d "$ROOT/opt/perimeter" "$(dirname "$ROOT${fact[perimeter_executable]}")"
  printf '#!/bin/sh\nexec /opt/perimeter/node_modules/node/bin/node /opt/perimeter/bin/perimeter.js "$@"\n' >"$ROOT${fact[perimeter_executable]}"
  chmod 755 "$ROOT${fact[perimeter_executable]}"
  # The STAND-IN for Hermes, as a virtualenv at host.agent.installDir (root's, read-only to the agent).
  local venv python_version
  venv=$(dirname "$(dirname "${fact[agent_python]}")")
  python_version=$(chroot "$ROOT" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  install -d "$ROOT$venv/bin" "$ROOT$venv/lib/python$python_version/site-packages"
  ln -sf /usr/bin/python3 "$ROOT$venv/bin/python"
  printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' "$python_version" >"$ROOT$venv/pyvenv.cfg"
  cp -r "$REPO/scripts/vps-nspawn/hermes_cli" "$ROOT$venv/lib/python$python_version/site-packages/"
  # What the stand-in must fail to dial on loopback (dashboard, mcp-guard's admin listener, the feeds).
  "$REPO/node_modules/node/bin/node" "$REPO/scripts/vps-nspawn/proof.ts" protected-ports "$RENDER" >"$ROOT$venv/lib/python$python_version/site-packages/hermes_cli/proof_ports.json"
  chmod -R go-w,a+rX "$ROOT$venv"
  # The admin users with a key (apply refuses to turn password login off otherwise); the key is thrown away.
  for user in ${fact[admin_users]}; do
    chroot "$ROOT" id "$user" >/dev/null 2>&1 || chroot "$ROOT" useradd --create-home --shell /bin/bash "$user"
    install -d -m 700 "$ROOT/home/$user/.ssh"
    ssh-keygen -q -t ed25519 -N '' -C "perimeter-proof" -f "$WORK/admin-key-$user" </dev/null
    install -m 600 "$WORK/admin-key-$user.pub" "$ROOT/home/$user/.ssh/authorized_keys"
    chroot "$ROOT" chown -R "$user:$user" "/home/$user/.ssh"
  done
  cp -r "$RENDER" "$ROOT/root/perimeter-render"
}
step "prepare the tree (Perimeter, stand-in, admin key)" 120 bash -c "$(declare -f prepare); $(declare -p ROOT RENDER REPO WORK MACHINE fact); prepare" || exit 1

# verify host reads the config the render was made from.
cp "$CONFIG" "$ROOT/root/perimeter-config.yaml"

# --- 3. boot and apply ---------------------------------------------------------------------------------------------
# --private-network: the container has its own network namespace with loopback only. --register=no --keep-unit:
# there is no systemd/machined on this host to register with. CAP_BPF and the bpf() system call: nspawn's default
# seccomp filter refuses bpf(), and the container's systemd then only logs (at debug level) that it cannot load
# the cgroup programs behind IPAddressDeny= and starts the units without them. A VPS's systemd, PID 1 of its own
# machine, has both; without them this proof would test a host that silently lacks the agent's first wall.
# SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: cgroup v2 only inside, as on Debian 12/13 and Ubuntu 24.04, whatever this host
# mounts (a hybrid host would otherwise show the container its own v1 hierarchies, read-only and shared).
# PERIMETER_NSPAWN_BPF=0 withholds them, to show that verify host and host apply then report the missing wall.
BPF_OPTIONS=(--capability=CAP_BPF --system-call-filter=bpf)
[ "${PERIMETER_NSPAWN_BPF:-1}" = 0 ] && BPF_OPTIONS=()
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet --boot --directory="$ROOT" --machine="$MACHINE" --private-network --register=no --keep-unit \
  "${BPF_OPTIONS[@]}" \
  --bind-ro="$REPO:/opt/perimeter" --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
  </dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
boot_begin=$(date +%s.%N)

find_leader() {
  for _ in $(seq 100); do
    for pid in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
      if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then echo "$pid"; return 0; fi
    done
    kill -0 "$NSPAWN_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
LEADER=$(find_leader) || { cat "$WORK/console.log"; die "systemd-nspawn did not start the container's systemd (console above)"; }

# Everything below runs in the container's network namespace: refuse to go on if it were the host's.
[ "$(readlink "/proc/$LEADER/ns/net")" != "$(readlink /proc/self/ns/net)" ] || die "the container shares this host's network namespace; refusing to go on"

# in_container COMMAND...: runs a command as root inside the booted container (its namespaces, a clean environment),
# bounded there by timeout(1) so that nothing outlives its step.
in_container() {
  nsenter --target "$LEADER" --mount --uts --ipc --net --pid --cgroup -- \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    /usr/bin/timeout --kill-after=5 "${IN_CONTAINER_SECONDS:-300}" "$@"
}
# Steps run under timeout(1) in a child bash, which sees exported functions and variables.
export LEADER AGENT_UNIT
export -f in_container log

wait_booted() {
  local state
  # systemctl answers once the container's systemd has opened its private socket; until then, wait.
  until in_container test -S /run/systemd/private; do sleep 0.2; done
  state=$(in_container systemctl is-system-running --wait 2>/dev/null || true)
  log "   system state: $state"
  if [ "$state" != running ]; then in_container systemctl --failed --no-legend --plain | sed 's/^/   failed: /'; fi
  [ "$state" = running ] || [ "$state" = degraded ]
}
export -f wait_booted
step "boot (systemd-nspawn --boot --private-network)" 180 bash -c wait_booted || { tail -30 "$WORK/console.log"; exit 1; }
log "   booted in $(since "$boot_begin") s; network interfaces: $(in_container ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"

# A dead-end link for TEST-NET addresses, inside the container's own namespace (no peer beyond it, no host side):
# with no route at all, connect() would fail with ENETUNREACH before any filter saw a packet, and prove nothing.
in_container ip link add pdead0 type veth peer name pdead1
in_container ip addr add 192.0.2.2/24 dev pdead0
in_container ip -6 addr add 2001:db8::2/64 dev pdead0 nodad
in_container ip link set pdead0 up
in_container ip link set pdead1 up

APPLY=(/usr/local/bin/perimeter host apply /root/perimeter-render)
step "perimeter host apply --dry-run" 180 bash -c 'in_container "$@"' _ "${APPLY[@]}" --dry-run >"$WORK/apply-dry-run.log" 2>&1 || { cat "$WORK/apply-dry-run.log"; exit 1; }
# Without cgroup BPF (PERIMETER_NSPAWN_BPF=0) apply installs everything but ends with host.agent-ip-filter FAIL and exit
# 1, and verify host says the same; the rest of the proof needs the unit's filter, so that mode stops there.
VERIFY=(/usr/local/bin/perimeter verify host -t vps -c /root/perimeter-config.yaml --format json)
verify_ip_filter() {
  local want=$1
  in_container "${VERIFY[@]}" >"$WORK/verify-host.json" 2>"$WORK/verify-host.err" || true
  "$NODE" "$REPO/scripts/vps-nspawn/proof.ts" ip-filter "$want" <"$WORK/verify-host.json" || { cat "$WORK/verify-host.err"; return 1; }
}
if [ "${PERIMETER_NSPAWN_BPF:-1}" = 0 ]; then
  step "perimeter host apply (no cgroup BPF: must exit 1)" 300 bash -c '! in_container "$@"' _ "${APPLY[@]}" >"$WORK/apply.log" 2>&1 || true
  grep -E '^host\.agent-ip-filter: FAIL' "$WORK/apply.log" | sed 's/^/   /' || fail "host apply did not report host.agent-ip-filter FAIL: $(tail -3 "$WORK/apply.log" | tr '\n' '|')"
  step "perimeter verify host: host.agent-ip-filter FAIL" 120 bash -c "$(declare -f verify_ip_filter); $(declare -p VERIFY WORK NODE REPO); verify_ip_filter FAIL" || true
  log ""
  log "== summary (no cgroup BPF, $(basename "$CONFIG"), Debian $SUITE, $(( $(date +%s) - started )) s in all)"
  printf '   %s\n' "${summary[@]}"
  if [ ${#failures[@]} -gt 0 ]; then printf '   - %s\n' "${failures[@]}"; exit 1; fi
  log "   without cgroup BPF, host apply and verify host both report that the agent unit's IPAddressDeny is not enforced"
  exit 0
fi
step "perimeter host apply" 300 bash -c 'in_container "$@"' _ "${APPLY[@]}" >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log"; exit 1; }
grep -E '^host\.agent-ip-filter: ' "$WORK/apply.log" | sed 's/^/   /'
grep -E '^(installed|services not started|  run:)' "$WORK/apply.log" | sed 's/^/   /'
# The operator's step 3: fill every env file, then restart the services (the command the render printed).
"$NODE" "$REPO/scripts/vps-nspawn/proof.ts" fill-env "$RENDER" "$ROOT"
SERVICES=()
for unit in "${UNITS[@]}"; do [ "$unit" = perimeter-firewall.service ] || SERVICES+=("$unit"); done
step "systemctl restart (after filling the env files)" 180 bash -c 'in_container systemctl restart "$@"' _ "${SERVICES[@]}" || true

wait_active() {
  for _ in $(seq 120); do
    in_container systemctl is-active --quiet "$@" && return 0
    sleep 0.5
  done
  return 1
}
export -f wait_active
step "every rendered unit active" 90 bash -c 'wait_active "$@"' _ "${UNITS[@]}" || true

# --- 4. what the booted host shows ---------------------------------------------------------------------------------
# Type=simple units are active as soon as they are forked; one whose start-up check fails exits a second or two
# later and restarts after RestartSec=2. Ten seconds let such a unit show its restart count in the table below.
sleep 10
# Socket-activated proxies (into the network-less sandbox runner) start on their first connection: make one, a
# GET /healthz through each rendered socket, so they are proven to carry a request and not only listed.
for socket_file in "$RENDER"/files/etc/systemd/system/*.socket; do
  [ -e "$socket_file" ] || continue
  listen=$(sed -n 's/^ListenStream=//p' "$socket_file" | head -1)
  # Retried for 30 s: the runner behind it may still be starting (the proxy then resets the connection).
  answer=$(in_container python3 -c 'import sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 30
while True:
    try:
        print(opener.open("http://" + sys.argv[1] + "/healthz", timeout=10).status)
        break
    except Exception as error:
        if time.monotonic() > deadline:
            print(repr(error))
            break
        time.sleep(1)' "$listen" 2>&1 || true)
  log "   $(basename "$socket_file") $listen: GET /healthz -> $answer"
  [ "$answer" = 200 ] || fail "GET /healthz through $(basename "$socket_file") ($listen) answered $answer"
done
# The socket-activated proxy and units pulled in by others are in the render too; list every unit file it installs.
mapfile -t ALL_UNITS < <(cd "$RENDER/files/etc/systemd/system" && ls)
log ""
log "   $(printf '%-40s %-10s %-8s %-8s %s' UNIT ACTIVE RESTARTS EXPOSURE SUB-STATE)"
for unit in "${ALL_UNITS[@]}"; do
  active=$(in_container systemctl is-active "$unit" 2>/dev/null || true)
  substate=$(in_container systemctl show -p SubState --value "$unit" 2>/dev/null || true)
  # A unit that crashes and restarts is "active" half of the time: its restart count tells.
  restarts=$(in_container systemctl show -p NRestarts --value "$unit" 2>/dev/null || true)
  exposure="-"
  case "$unit" in
    *.service) exposure=$(in_container systemd-analyze security --no-pager "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p') ;;
  esac
  log "   $(printf '%-40s %-10s %-8s %-8s %s' "$unit" "$active" "${restarts:--}" "${exposure:--}" "$substate")"
  [ "${restarts:-0}" = 0 ] || fail "$unit restarted ${restarts} time(s) ($(in_container journalctl -u "$unit" -n 5 --no-pager -o cat 2>/dev/null | tr '\n' '|'))"
  [ "$active" = active ] || fail "$unit is $active ($(in_container journalctl -u "$unit" -n 5 --no-pager -o cat 2>/dev/null | tr '\n' '|'))"
done
for unit in ssh.service fail2ban.service; do
  active=$(in_container systemctl is-active "$unit" 2>/dev/null || true)
  log "   $(printf '%-40s %-10s %-8s %-8s %s' "$unit" "$active" "" "" "(reloaded by apply)")"
  [ "$active" = active ] || fail "$unit is $active"
done
log ""

agent_journal() {
  local invocation
  invocation=$(in_container systemctl show -p InvocationID --value "$AGENT_UNIT")
  in_container journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$invocation"
}
wait_probe() {
  for _ in $(seq 180); do
    agent_journal | grep -q 'PERIMETER-PROOF ' && return 0
    sleep 0.5
  done
  return 1
}
export -f agent_journal wait_probe
judge() { "$NODE" "$REPO/scripts/vps-nspawn/proof.ts" judge "$1" "${fact[agent_uid]}"; }

step "perimeter verify host: host.agent-ip-filter PASS" 120 bash -c "$(declare -f verify_ip_filter); $(declare -p VERIFY WORK NODE REPO); verify_ip_filter PASS" || true

# 4a. As applied: the firewall's uid rule is the first wall the agent's packets meet (netfilter's output hook runs
# before the cgroup egress filter).
nft_agent_packets() { in_container nft list chain inet perimeter output | sed -n "s/.*meta skuid ${fact[agent_uid]} counter packets \([0-9]*\).*/\1/p"; }
step "agent probe: as applied (firewall loaded)" 120 bash -c wait_probe || true
agent_journal | judge firewall || fail "the agent's unit, firewall loaded"
packets=$(nft_agent_packets)
log "   firewall: the agent's uid rule counted ${packets:-?} packet(s)"
[ "${packets:-0}" -gt 0 ] || fail "the firewall's agent rule counted no packet"

# 4b. The firewall's table removed: only the unit's own IPAddressDeny is left, and the agent still gets EPERM.
in_container systemctl stop perimeter-firewall.service
if in_container nft list table inet perimeter >/dev/null 2>&1; then fail "the firewall's table is still loaded after stopping perimeter-firewall"; fi
step "agent probe: unit filter only (firewall stopped)" 120 bash -c 'in_container systemctl restart "$AGENT_UNIT" && wait_probe' || true
agent_journal | judge unit-filter || fail "the agent's unit, its IPAddressDeny alone"
# Controls: the same connects from root outside any unit, and from a transient unit as the agent's user without
# IPAddressDeny, are not refused with EPERM: the refusal above is the unit's filter, not the namespace or the user.
in_container "${fact[agent_python]}" -m hermes_cli.main probe-outside | judge control || fail "control: root outside the unit"
in_container systemd-run --quiet --wait --pipe --collect -p User="${fact[agent_user]}" -p PrivateUsers=yes \
  "${fact[agent_python]}" -m hermes_cli.main probe-outside | judge control || fail "control: transient unit as ${fact[agent_user]} without IPAddressDeny"
in_container systemctl start perimeter-firewall.service
in_container systemctl is-active --quiet perimeter-firewall.service || fail "perimeter-firewall did not start again"

# 4c. Idempotent: the same render again installs nothing and restarts nothing.
step "perimeter host apply (again)" 300 bash -c 'in_container "$@"' _ "${APPLY[@]}" >"$WORK/apply-again.log" 2>&1 || cat "$WORK/apply-again.log"
grep -q '^installed 0 file(s)' "$WORK/apply-again.log" || fail "a second apply installed files: $(grep -E '^  (new|changed|mode) ' "$WORK/apply-again.log" | tr '\n' '|')"
if grep -q 'run: systemctl restart' "$WORK/apply-again.log"; then fail "a second apply restarted services"; fi

log ""
log "== summary ($(basename "$CONFIG"), Debian $SUITE, $(( $(date +%s) - started )) s in all)"
printf '   %s\n' "${summary[@]}"
if [ ${#failures[@]} -gt 0 ]; then
  log "   ${#failures[@]} failure(s):"
  printf '   - %s\n' "${failures[@]}"
  exit 1
fi
log "   every rendered unit active; the agent's unit refused off-loopback (firewall, then EPERM from its own filter); second apply changed nothing"
