#!/usr/bin/env bash
# The compute benchmark as a multiboot kernel (scripts/bench/compute-mb.S,
# 900 M instructions) on ringlab's translator, on its interpreter and on
# QEMU's TCG (qemu-system-i386 from Debian: 7.2), one right after the
# other, ROUNDS times, with the same kernel built with 1 iteration to show
# each one's start-up cost. Prints every wall time and the ratios of the
# medians. Used for BENCHMARKS.md (issue 6).
#
# Needs qemu-system-x86 (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}

if ! command -v qemu-system-i386 >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq qemu-system-x86
fi
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in full one; do
    defs=()
    [ $n = one ] && defs=(--defsym ITERATIONS=1)
    as --32 "${defs[@]}" -o "$work/$n.o" scripts/bench/compute-mb.S
    ld -m elf_i386 -nostdlib -Ttext=0x100000 -e start -o "$work/$n.elf" "$work/$n.o"
done

# Wall time of a command, in seconds (its output must be the checksum).
wall() {
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$("$@" 2>/dev/null || true)
    t1=$(date +%s.%N)
    echo "$out" | grep -qE '^[0-9a-f]{8}$' || { echo "no checksum from: $*" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
qemu=(qemu-system-i386 -M isapc -cpu pentium2 -m 16 -display none -serial stdio
      -device isa-debug-exit,iobase=0xf4,iosize=4 -accel tcg -kernel)

declare -A times
for r in $(seq "$ROUNDS"); do
    for n in full one; do
        times[bt-$n]+="$(wall target/release/ringlab run "$work/$n.elf" --engine bt) "
        times[qemu-$n]+="$(wall "${qemu[@]}" "$work/$n.elf") "
        [ $n = full ] && times[interp-$n]+="$(wall target/release/ringlab run "$work/$n.elf" --engine interp) "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for k in bt-full qemu-full interp-full bt-one qemu-one; do
    printf '%-12s %s  median %s s\n' "$k" "${times[$k]}" "$(echo "${times[$k]}" | median)"
done
bt=$(echo "${times[bt-full]}" | median)
q=$(echo "${times[qemu-full]}" | median)
i=$(echo "${times[interp-full]}" | median)
awk -v i="$i" -v q="$q" -v b="$bt" 'BEGIN {
    printf "interpreter / translator: %.2f\nQEMU TCG / translator:    %.2f\n", i / b, q / b }'
