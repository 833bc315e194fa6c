#!/usr/bin/env bash
# Guest disk read throughput: tests/guests/ata-bench.S reads a 1 MiB disk
# (2048 sectors, READ SECTORS of 256, polling, one REP INSW of 256 words
# per sector) on ringlab's interpreter, translator and KVM (where
# /dev/kvm opens) and on QEMU's TCG (qemu-system-i386 -M isapc, the same
# image as a multiboot kernel and the same disk), ROUNDS times each, one
# right after the other. Each is timed against the same guest with
# SECTORS=0 (start-up, no reads), measured in the same round, so the
# throughput is 1 MiB / (median full - median baseline). LOOP=1 runs the
# variant that reads each word with a single INSW instead of REP INSW (the
# device's bulk path against one port access per word).
#
#   ROUNDS=9 scripts/bench-ata.sh          # the figures in BENCHMARKS.md
#   PASSES=8 scripts/bench-ata.sh          # read the disk 8 times per run
#   ENGINES="interp bt" scripts/bench-ata.sh   # only these (of interp bt kvm qemu)
#
# Every run must print the same "read N sectors, sum S" line.
# Needs GNU binutils and qemu-system-x86 (skipped if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
PASSES=${PASSES:-1}

cargo build --release -q -p ringlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build() { # NAME DEFSYM...
    local name=$1; shift
    local defs=()
    for d in "$@"; do defs+=(--defsym "$d"); done
    as --32 -I tests/guests "${defs[@]}" -o "$work/$name.o" tests/guests/ata-bench.S
    ld -m elf_i386 -nostdlib -N -Ttext=0x100000 -e start -o "$work/$name.elf" "$work/$name.o" 2>/dev/null
    objcopy -O binary -j .text "$work/$name.elf" "$work/$name.bin"
}
build full "PASSES=$PASSES"
build base SECTORS=0
build loop "PASSES=$PASSES" LOOP=1
# 2048 sectors, each starting with its number in four digits.
awk 'BEGIN { for (s = 0; s < 2048; s++) printf "%-512s", sprintf("%04d sector", s) }' > "$work/disk.img"

engines=(interp bt)
if [ "$(./target/release/ringlab run "$work/base.bin" --engine kvm --no-input 2>/dev/null)" \
     = "read 0 sectors, sum 00000000" ]; then
    engines+=(kvm)
else
    echo "kvm: not usable here, left out"
fi
command -v qemu-system-i386 > /dev/null && engines+=(qemu) || echo "qemu: not installed, left out"
if [ -n "${ENGINES:-}" ]; then
    wanted=()
    for e in "${engines[@]}"; do [[ " $ENGINES " == *" $e "* ]] && wanted+=("$e"); done
    engines=("${wanted[@]}")
fi

# Runs variant $2 on engine $1; prints its output line.
run() {
    if [ "$1" = qemu ]; then
        qemu-system-i386 -M isapc -cpu pentium2 -m 32 -nodefaults -display none -serial stdio \
            -device isa-debug-exit,iobase=0xf4,iosize=4 -accel tcg -kernel "$work/$2.bin" \
            -drive "file=$work/disk.img,format=raw,if=ide,index=0,snapshot=on" 2>/dev/null || true
    else
        ./target/release/ringlab run "$work/$2.bin" --engine "$1" --no-input \
            --disk "$work/disk.img" --snapshot || true
    fi
}
# Wall time of `run $1 $2`, in seconds; checks the output line.
wall() {
    local t0 t1 out want
    t0=$(date +%s.%N)
    out=$(run "$1" "$2")
    t1=$(date +%s.%N)
    case $2 in base) want="read 0 sectors, sum 00000000" ;; *) want=$expect ;; esac
    [ "$out" = "$want" ] || { echo "$1 $2 printed '$out', not '$want'" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}
expect=$(run interp full)
echo "every run prints: $expect"
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mib=$(awk -v p="$PASSES" 'BEGIN { print p }')
for e in "${engines[@]}"; do
    b=(); f=(); l=()
    for i in $(seq "$ROUNDS"); do
        b+=("$(wall "$e" base)")
        f+=("$(wall "$e" full)")
        l+=("$(wall "$e" loop)")
    done
    echo "$e: baseline ${b[*]} s; REP INSW ${f[*]} s; INSW loop ${l[*]} s"
    awk -v e="$e" -v b="$(median "${b[@]}")" -v f="$(median "${f[@]}")" \
        -v l="$(median "${l[@]}")" -v m="$mib" 'BEGIN {
        printf "%s medians: baseline %.4f s, REP INSW %.4f s (%.1f MiB/s), INSW loop %.4f s (%.1f MiB/s), REP INSW %.1fx the loop\n",
            e, b, f, m / (f - b), l, m / (l - b), (l - b) / (f - b) }'
done
