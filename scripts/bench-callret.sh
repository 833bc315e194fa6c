#!/usr/bin/env bash
# CALL/RET against native (issue 21: "CALL/RET within 5x native cycles"):
# the nanobench call/ret row's loop (a near CALL to a RET, then LOOP) run
# N times as a boot sector on ringlab's engines (scripts/bench/callret.S)
# and as an x86-64 Linux program on this host (callret-native.S), each
# also with 0 iterations to take its start-up off, alternated for ROUNDS
# rounds. Prints the medians, the nanoseconds per iteration and each
# engine's ratio to native.
#
#   scripts/bench-callret.sh                     # 20 M iterations, 5 rounds
#   N=50000000 ROUNDS=7 ENGINES="bt" scripts/bench-callret.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000000}
ROUNDS=${ROUNDS:-5}
ENGINES=${ENGINES:-interp bt}
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 0 "$N"; do
    as --32 -I lessons/guests/suite --defsym ITERATIONS="$n" -o "$work/g$n.o" scripts/bench/callret.S
    ld -m elf_i386 -nostdlib -N -Ttext=0x7c00 -e start -o "$work/g$n.elf" "$work/g$n.o" 2>/dev/null
    objcopy -O binary -j .text "$work/g$n.elf" "$work/g$n.bin"
    [ "$(stat -c %s "$work/g$n.bin")" = 512 ] || { echo "callret.S: not one sector" >&2; exit 1; }
    as --defsym ITERATIONS="$n" -o "$work/n$n.o" scripts/bench/callret-native.S
    ld -o "$work/n$n" "$work/n$n.o"
done
expect() { printf '%08x' "$1"; }

# One run: wall seconds.
run() {
    local who=$1 n=$2 t0 t1 out
    t0=$(date +%s.%N)
    if [ "$who" = native ]; then
        "$work/n$n"
    else
        out=$(target/release/ringlab run --engine "$who" "$work/g$n.bin" 2>/dev/null || true)
        [ "$(echo "$out" | tr -d '\r' | head -1)" = "$(expect "$n")" ] || {
            echo "$who, $n iterations: wrong output: $out" >&2
            exit 1
        }
    fi
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

who_all="native $ENGINES"
declare -A times
for r in $(seq "$ROUNDS"); do
    for w in $who_all; do
        for n in 0 "$N"; do
            times[$w,$n]+="$(run "$w" "$n") "
        done
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$(hostname), $(date -u +%Y-%m-%dT%H:%MZ), $N iterations, $ROUNDS rounds, medians"
printf '%-8s %10s %12s %14s %10s\n' who "0 iter s" "$N iter s" "ns/iteration" "/native"
declare -A per
for w in $who_all; do
    z=$(echo "${times[$w,0]}" | median)
    t=$(echo "${times[$w,$N]}" | median)
    per[$w]=$(awk -v z="$z" -v t="$t" -v n="$N" 'BEGIN { printf "%.2f", (t - z) * 1e9 / n }')
    printf '%-8s %10s %12s %14s %10s\n' "$w" "$z" "$t" "${per[$w]}" \
        "$(awk -v a="${per[$w]}" -v b="${per[native]}" 'BEGIN { printf "%.2f", a / b }')"
done
