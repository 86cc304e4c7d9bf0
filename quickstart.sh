#!/usr/bin/env bash
# One command on a fresh Debian/Ubuntu machine: install what Perimeter needs, install the project (Node 24 comes
# with it), and run the main job — the whole perimeter on this host with `perimeter up` (Ctrl-C stops it). The
# bundled example needs no cloud account; its local tokens are generated into .perimeter/secrets.env (0600).
#   ./quickstart.sh [CONFIG]        (default: examples/local.yaml)
# Rendering stays one command away (README, docs/render.md):
#   npx perimeter render -c examples/k3s-telegram-minimax.yaml -t kubernetes -o out/kubernetes
set -euo pipefail
cd "$(dirname "$0")"
config="${1:-examples/local.yaml}"
./scripts/install-system-packages.sh
npm ci
echo "To render instead: npx perimeter render -c $config -t kubernetes|compose|vps -o out/DIR (then npx perimeter check out/DIR)"
exec npx perimeter up -c "$config"
