#!/usr/bin/env bash
# What gdb attached to ringlab costs while it sets no breakpoint (issue 19):
# the compute loop as a multiboot kernel (scripts/bench/compute-mb.S, 900 M
# instructions, flat 32-bit protected mode: it runs on every engine, kvm-pvm
# included; fewer iterations on kvm, below) on each engine, plain and under `--gdb` with gdb's `continue`.
#
# Each measurement is the wall time of the whole ringlab process. Under gdb
# that includes gdb connecting (its start, the handshake, `continue`), a
# fixed cost, measured with the same kernel built for one iteration
# (ITERATIONS=1) and subtracted:
#
#   loop time, plain = T(plain, full)  - T(plain, 1 iteration)
#   loop time, gdb   = T(gdb, full)    - T(gdb, 1 iteration)
#   overhead         = loop time, gdb / loop time, plain
#
# A round runs the four (plain full, plain 1, gdb full, gdb 1) one after the
# other for one engine; ROUNDS rounds per engine; medians are printed. The
# engines: interp, bt, and kvm when /dev/kvm opens (ENGINES="..." chooses).
#
#   scripts/bench-gdb.sh             # 3 rounds
#   scripts/bench-gdb.sh -n 5
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
[ "${1:-}" = "-n" ] && rounds=$2
engines=${ENGINES:-"interp bt kvm"}
command -v gdb >/dev/null || { echo "bench-gdb: gdb is needed (apt-get install gdb)" >&2; exit 1; }
cargo build --release -q
ringlab=$PWD/target/release/ringlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The loop's iterations: 112.5 M (900 M instructions) on interp and bt;
# KVM_ITERATIONS (default 2 M) on kvm, since this project's kvm-pvm hosts
# run protected-mode code at a few million instructions a second.
for it in full kvm 1; do
    case $it in
        full) defs=() ;;
        kvm) defs=(--defsym "ITERATIONS=${KVM_ITERATIONS:-2000000}") ;;
        1) defs=(--defsym ITERATIONS=1) ;;
    esac
    as --32 "${defs[@]}" -o "$work/c$it.o" scripts/bench/compute-mb.S
    ld -m elf_i386 -Ttext=0x100000 -e start -o "$work/c$it.elf" "$work/c$it.o"
done

# Seconds (with ms) of running "$@".
secs() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

port=$((20000 + RANDOM % 20000))
plain() { "$ringlab" run "$1" --engine "$2" --no-input; }
under_gdb() {
    port=$((port + 1))
    "$ringlab" run "$1" --engine "$2" --no-input --gdb "$port" &
    local pid=$!
    # gdb retries until ringlab listens.
    for _ in $(seq 50); do
        gdb -nx -q -batch -ex "target remote 127.0.0.1:$port" -ex continue \
            >/dev/null 2>&1 && break
        sleep 0.02
    done
    wait "$pid" || true
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-7s %10s %10s %10s %10s %9s %9s %9s\n' engine plain plain-1 gdb gdb-1 loop loop-gdb overhead
for e in $engines; do
    # The kernel leaves through port 0xF4 with 0: ringlab's status 1.
    rc=0
    "$ringlab" run "$work/c1.elf" --engine "$e" --no-input >/dev/null 2>&1 || rc=$?
    if [ "$rc" != 1 ]; then
        echo "$e: skipped (KVM cannot run the kernel on this host)"
        continue
    fi
    : >"$work/$e"
    full=$work/cfull.elf
    [ "$e" = kvm ] && full=$work/ckvm.elf
    for _ in $(seq "$rounds"); do
        a=$(secs plain "$full" "$e")
        b=$(secs plain "$work/c1.elf" "$e")
        c=$(secs under_gdb "$full" "$e")
        d=$(secs under_gdb "$work/c1.elf" "$e")
        echo "$a $b $c $d" >>"$work/$e"
        echo "  $e round: plain $a s, plain-1 $b s, gdb $c s, gdb-1 $d s"
    done
    col() { awk -v k="$1" '{print $k}' "$work/$e" | median; }
    a=$(col 1) b=$(col 2) c=$(col 3) d=$(col 4)
    loop=$(echo "scale=3; $a - $b" | bc)
    loopg=$(echo "scale=3; $c - $d" | bc)
    ratio=$(echo "scale=3; $loopg / $loop" | bc)
    printf '%-7s %10s %10s %10s %10s %9s %9s %9s\n' "$e" "$a" "$b" "$c" "$d" "$loop" "$loopg" "$ratio"
done
