#!/usr/bin/env bash
# `ringlab bench`'s nanobenchmark rows for several builds and engines,
# alternated round by round on one host (so they all see the same noise),
# medians of ROUNDS rounds, host ns per operation. For comparing a change
# against the commit before it: build the old commit beside (a git
# worktree with its own CARGO_TARGET_DIR) and name both binaries.
#
#   scripts/bench-ab.sh target/release/ringlab:interp /tmp/old/ringlab:bt target/release/ringlab:bt
#   ROUNDS=9 scripts/bench-ab.sh A:bt B:bt
set -euo pipefail
ROUNDS=${ROUNDS:-5}
[ $# -ge 1 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
rows="in cr3wr pgfault divzero ptemod call/ret syscall"
declare -A vals
for r in $(seq "$ROUNDS"); do
    for be in "$@"; do
        bin=${be%%:*}
        engine=${be##*:}
        while read -r name v; do
            vals[$be,$name]+="$v "
        done < <("$bin" bench --engine "$engine" --compute-timeout 0.01 2>/dev/null |
            awk '/^(in|cr3wr|pgfault|divzero|ptemod|call\/ret|syscall) / { print $1, $(NF-1) }')
    done
    echo "round $r of $ROUNDS done" >&2
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$(hostname), $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds, medians, host ns per operation"
printf '%-9s' row
for be in "$@"; do printf ' %s' "$be"; done
echo
for row in $rows; do
    printf '%-9s' "$row"
    for be in "$@"; do
        printf ' %*s' "${#be}" "$(echo "${vals[$be,$row]:-}" | median)"
    done
    echo
done
