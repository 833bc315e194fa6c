#!/usr/bin/env bash
# Time to the boot sector (issue 17): how long ringlab's BIOS takes from
# the reset vector to 0000:7C00, on each engine, beside QEMU with SeaBIOS
# on the same host.
#
# The guest is a boot sector that exits at once (mov al, 0; out 0xF4, al:
# QEMU's isa-debug-exit, ringlab's exit port). Each engine boots it ROUNDS
# times from the first hard disk, alternating with a baseline that has no
# firmware: a 64 KiB ROM whose reset vector holds the same exit (ringlab
# --bios, QEMU -bios), so the process, the machine and the disk are set up
# alike and only the firmware is missing. POST time = median(firmware
# run) - median(baseline run), wall time of the whole process, measured
# the same way for ringlab and QEMU. For ringlab also:
#   - the instructions retired (interp, bt: --json), the boot sector's two
#     among them;
#   - the run's own wall time (--json wall_seconds: from the reset vector
#     to the exit, without process start-up), median;
#   - where the instructions go, per POST code phase (an interpreter
#     --trace: the instruction count at each write to port 0x80).
# QEMU: qemu-system-i386 -M pc -nodefaults -vga std -m 32 -accel tcg (the
# machine of tests/tests/firmware_qemu.rs; no network card, so no iPXE).
# QEMU with -accel kvm is not measured: on kvm-pvm it crawls.
#
#   scripts/bench-post.sh                 # ROUNDS=9, every engine
#   ROUNDS=5 ENGINES="interp qemu" scripts/bench-post.sh
#
# Needs only the shell's tools (the images are written with printf). QEMU
# is left out if qemu-system-i386 is missing, KVM if /dev/kvm does not run
# the guest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-9}

cargo build --release -q -p ringlab
ringlab=./target/release/ringlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# mov al, 0; out 0xF4, al; cli; hlt
exit_code='\xb0\x00\xe6\xf4\xfa\xf4'
# The boot sector: the exit, zeros, the signature 55h AAh at 510.
{ printf "$exit_code"; head -c 504 /dev/zero; printf '\x55\xaa'; } > "$work/exit.img"
# The baseline ROM: 64 KiB, the exit at its reset vector (F000:FFF0,
# offset FFF0h), no firmware at all.
{ head -c 65520 /dev/zero; printf "$exit_code"; head -c 10 /dev/zero; } > "$work/reset.rom"

engines=(interp bt)
if "$ringlab" run --engine kvm --no-input --snapshot "$work/exit.img" >/dev/null 2>&1 \
    || [ $? -eq 1 ]; then
    engines+=(kvm)
else
    echo "kvm: not usable here, left out"
fi
command -v qemu-system-i386 >/dev/null && engines+=(qemu) || echo "qemu: not installed, left out"
if [ -n "${ENGINES:-}" ]; then
    wanted=()
    for e in "${engines[@]}"; do [[ " $ENGINES " == *" $e "* ]] && wanted+=("$e"); done
    engines=("${wanted[@]}")
fi

qemu=(qemu-system-i386 -M pc -nodefaults -vga std -m 32 -accel tcg -display none
      -device isa-debug-exit,iobase=0xf4,iosize=4
      -drive "file=$work/exit.img,format=raw,index=0,media=disk,snapshot=on")
# Runs engine $1 with (full) or without (base) firmware; the exit value 0
# makes both ringlab and QEMU exit with status 1.
run() {
    local rc=0
    case $1/$2 in
        qemu/full) "${qemu[@]}" >/dev/null 2>&1 || rc=$? ;;
        qemu/base) "${qemu[@]}" -bios "$work/reset.rom" >/dev/null 2>&1 || rc=$? ;;
        */full) "$ringlab" run --engine "$1" --no-input --snapshot --json "$work/$1.json" \
            "$work/exit.img" >/dev/null 2>&1 || rc=$? ;;
        */base) "$ringlab" run --engine "$1" --no-input --snapshot --bios "$work/reset.rom" \
            "$work/exit.img" >/dev/null 2>&1 || rc=$? ;;
    esac
    [ "$rc" -eq 1 ] || { echo "$1 $2: exit status $rc, not 1 (the guest's exit)" >&2; exit 1; }
}
# Wall time of `run $1 $2`, in seconds.
wall() {
    local t0 t1
    t0=$(date +%s.%N)
    run "$1" "$2"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}
# A top-level number in ringlab's --json report.
json_field() { sed -n "s/^  \"$2\": \\([0-9.e-]*\\),\\{0,1\\}\$/\\1/p" "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "host: $(uname -srm), $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ); ROUNDS=$ROUNDS"
command -v qemu-system-i386 >/dev/null && echo "$(qemu-system-i386 --version | head -n 1)"

declare -A post in_run
for e in "${engines[@]}"; do
    b=(); f=(); inner=(); insns="-"
    for i in $(seq "$ROUNDS"); do
        b+=("$(wall "$e" base)")
        f+=("$(wall "$e" full)")
        if [ "$e" != qemu ]; then
            inner+=("$(json_field "$work/$e.json" wall_seconds)")
            insns=$(json_field "$work/$e.json" instructions)
            [ -n "$insns" ] || insns="-"
        fi
    done
    mb=$(median "${b[@]}"); mf=$(median "${f[@]}")
    post[$e]=$(awk -v f="$mf" -v b="$mb" 'BEGIN { printf "%.4f", f - b }')
    echo "$e: baseline ${b[*]} s"
    echo "$e: firmware ${f[*]} s"
    line="$e medians: baseline $mb s, firmware $mf s, POST ${post[$e]} s"
    if [ "$e" != qemu ]; then
        in_run[$e]=$(median "${inner[@]}")
        line+="; in-run wall ${in_run[$e]} s; instructions $insns"
    fi
    echo "$line"
done

if [ -n "${post[qemu]:-}" ]; then
    for e in "${engines[@]}"; do
        [ "$e" = qemu ] && continue
        awk -v e="$e" -v p="${post[$e]}" -v r="${in_run[$e]}" -v q="${post[qemu]}" \
            'BEGIN { printf "%s / QEMU+SeaBIOS POST: %.3f (process difference), %.3f (in-run wall)\n",
                     e, p / q, r / q }'
    done
fi

# Where the interpreter's instructions go: the instruction count at each
# POST code (bios.S: 01 start, 02 PIC, 03 PIT, 04 RTC, 05 8042, 07 IVT,
# 08 BDA, 06 memory, 09 video, 0A disks, 0B MP tables and the banner,
# 0C INT 19h, 0D jump to 7C00), each phase up to the next code.
"$ringlab" run --engine interp --no-input --snapshot --trace "$work/trace.jsonl" \
    "$work/exit.img" >/dev/null 2>&1 || true
echo "interp: instructions per POST phase (code: instructions until the next code)"
sed -n 's/^{"icount":\([0-9]*\),.*"port":128,"size":1,"write":true,"value":\([0-9]*\)}$/\1 \2/p' \
    "$work/trace.jsonl" | awk '
    NR > 1 { printf "  %02x: %d\n", code, $1 - at }
    { at = $1; code = $2 }
    END { printf "  %02x reached at instruction %d\n", code, at }'
