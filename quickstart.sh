#!/usr/bin/env bash
# One command on a fresh Debian/Ubuntu machine: install what Perimeter needs, install the project (Node 24 comes
# with it), and run the main job — render the bundled example for Kubernetes and for Docker Compose into out/.
#   ./quickstart.sh [CONFIG]        (default: examples/k3s-telegram-minimax.yaml)
set -euo pipefail
cd "$(dirname "$0")"
config="${1:-examples/k3s-telegram-minimax.yaml}"
./scripts/install-system-packages.sh
npm ci
npx perimeter render -c "$config" -t kubernetes -o out/kubernetes --force
npx perimeter render -c "$config" -t compose -o out/compose --force
npx perimeter check out/kubernetes out/compose
echo "Rendered $config into out/kubernetes (kubectl apply -k out/kubernetes) and out/compose (docker compose up)."
