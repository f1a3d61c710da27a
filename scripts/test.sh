#!/usr/bin/env bash
# The whole test suite: the command the README gives and CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets
python3 -m unittest discover -s bench -p 'test_*.py'
python3 -m unittest discover -s scripts -p 'test_*.py'
python3 scripts/structure.py
