#!/bin/bash
# usage: bench/perf/head_cost.sh [LABEL]
# Instructions to parse nginx's small response head and wrk's request head
# once each (engine::head), from callgrind runs of the head_cost example at
# two counts: the difference over the extra count, so start-up and the
# buffers' copies cancel out only partly (the copies are counted).
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -q -p portcullis-proxy --example head_cost
BIN=target/release/examples/head_cost
ir() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" "$1" > /dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | grep -oP '^[\d,]+' | tr -d ,
  rm -f "$out"
}
LOW=$(ir 1000); HIGH=$(ir 11000)
echo "${1:-head_cost} Ir per response+request parse: $(( (HIGH - LOW) / 10000 ))"
