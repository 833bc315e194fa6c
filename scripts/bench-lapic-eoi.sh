#!/usr/bin/env bash
# The cost of a local APIC EOI write on each engine (BENCHMARKS.md): on KVM
# without an in-kernel irqchip every local APIC access is an MMIO exit to
# ringlab's own device model; the interpreter and the translator reach the
# same device through a function call.
#
# Assembles scripts/bench/lapic-eoi.S four times (OP=0 a RAM store, the
# baseline; 1 EOI; 2 TPR; 3 OUT 0x80, a port exit for comparison), each a
# multiboot kernel writing COUNT times, and runs every variant on every
# engine (KVM where /dev/kvm works), alternating, ROUNDS times. Prints the
# median wall time of each `ringlab run` (from --stats), the cost of one
# write, (median(OP) - median(baseline)) / COUNT, and each engine's cost
# over the interpreter's; then the VM exit lines of one EOI run on KVM.
#
# Usage: [COUNT=N] [ROUNDS=R] scripts/bench-lapic-eoi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
ROUNDS=${ROUNDS:-3}
cargo build --release -q -p ringlab
ringlab=target/release/ringlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
names=(baseline eoi tpr out80)
for op in 0 1 2 3; do
    as --32 --defsym OP=$op --defsym COUNT="$COUNT" -o "$work/$op.o" scripts/bench/lapic-eoi.S
    ld -m elf_i386 -nostdlib -Ttext=0x100000 -e start -o "$work/$op.elf" "$work/$op.o"
done
engines=(interp bt)
# ringlab's exit status is the guest's: isa-debug-exit with 0 gives 1.
try() { $ringlab run "$work/$2.elf" --engine "$1" "${@:3}" 2>&1 || true; }
out=$(try kvm 0)
if [[ $out == *done* ]]; then
    engines+=(kvm)
else
    echo "kvm: not usable here: $(echo "$out" | tail -1)"
fi

# One run: its wall time in seconds, from --stats.
wall() {
    try "$1" "$2" --stats | awk '/^ *wall time/ { print $(NF - 1) }'
}
declare -A times
for r in $(seq "$ROUNDS"); do
    for e in "${engines[@]}"; do
        for op in 0 1 2 3; do
            t=$(wall "$e" $op)
            times[$e,$op]="${times[$e,$op]:-} $t"
            echo "round $r: $e ${names[$op]} $t s"
        done
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "COUNT=$COUNT, median of $ROUNDS rounds; per write = (median - baseline) / COUNT"
printf '%-7s %-9s %10s %12s %12s\n' engine write "wall s" "ns/write" "x interp"
declare -A per
for e in "${engines[@]}"; do
    base=$(echo "${times[$e,0]}" | median)
    for op in 0 1 2 3; do
        m=$(echo "${times[$e,$op]}" | median)
        if [ $op = 0 ]; then
            printf '%-7s %-9s %10s %12s %12s\n' "$e" "${names[$op]}" "$m" - -
            continue
        fi
        ns=$(awk -v m="$m" -v b="$base" -v n="$COUNT" 'BEGIN { printf "%.1f", (m - b) / n * 1e9 }')
        per[$e,$op]=$ns
        ratio=$(awk -v a="$ns" -v b="${per[interp,$op]}" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
        printf '%-7s %-9s %10s %12s %12s\n' "$e" "${names[$op]}" "$m" "$ns" "$ratio"
    done
done
if [[ " ${engines[*]} " == *" kvm "* ]]; then
    echo
    echo "ringlab run lapic-eoi (OP=1) --engine kvm --stats, the exit lines:"
    try kvm 1 --stats | grep -E "wall time|vm exits|exit |local APIC" || true
fi
