#!/usr/bin/env bash
# Debian/Ubuntu packages Perimeter and its tests use. Shared by quickstart.sh and .ci/run so they cannot drift.
#   nodejs npm      — only to bootstrap: `npm ci` then installs the pinned Node 24 (the `node` npm package)
#   bubblewrap      — the local sandbox backend
#   iproute2        — network namespaces (tests, `offline`)
#   squid           — the egress-proxy benchmark peer
#   openssl         — test certificates
#   curl            — the HTTPS_PROXY-honouring client of the network-namespace isolation test
#   procps psmisc   — process inspection in the sandbox attack suite
#   python3 nodejs  — interpreters the sandbox tests run inside bubblewrap (/usr/bin/python3, /usr/bin/node)
#   util-linux      — prlimit for sandbox resource limits
#   ripgrep socat   — needed by the sandbox benchmark's peer (@anthropic-ai/sandbox-runtime)
#   kubectl / kubernetes-client — `kubectl kustomize` to build rendered Kubernetes output offline
#   age             — the backup benchmark's peer (tar | age) and the test that archives open with the age tool
#   strace          — the connect trace of the real-agent suite (test/agents): every connect() an agent makes
#   systemd nftables openssh-server fail2ban python3-systemd — the VPS render's tests read its files with the real
#                   tools (systemd-analyze security/verify, nft -c, sshd -T, fail2ban-client -t with the systemd
#                   backend); the daemons are not started (see below)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
packages=(bubblewrap iproute2 squid openssl procps psmisc curl ca-certificates python3 nodejs util-linux ripgrep socat age strace)
command -v npm >/dev/null || packages+=(npm)
$SUDO apt-get install -y --no-install-recommends "${packages[@]}"
command -v kubectl >/dev/null || $SUDO apt-get install -y --no-install-recommends kubernetes-client
# chromium: the dashboard's browser tests drive Debian's build headless with playwright-core (nothing downloaded).
$SUDO apt-get install -y --no-install-recommends chromium
# sshd and fail2ban would try to start on install: a policy-rc.d that refuses (exit 101) keeps invoke-rc.d from
# starting any daemon; an existing one (container images ship it) is left as it is.
vps_tools=(systemd nftables openssh-server fail2ban python3-systemd)
if [ -e /usr/sbin/policy-rc.d ]; then
  $SUDO apt-get install -y --no-install-recommends "${vps_tools[@]}"
else
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod 755 /usr/sbin/policy-rc.d
  $SUDO apt-get install -y --no-install-recommends "${vps_tools[@]}" || { $SUDO rm -f /usr/sbin/policy-rc.d; exit 1; }
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
