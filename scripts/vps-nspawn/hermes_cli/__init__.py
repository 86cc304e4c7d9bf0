"""Stand-in package: see main.py (scripts/vps-nspawn-proof.sh)."""
