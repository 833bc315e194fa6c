#!/usr/bin/env bash
# The benchmark suite (issue 21): the guests of lessons/guests/suite, each a
# boot sector that needs no BIOS service, on ringlab's engines, QEMU's TCG
# (Debian's qemu-system-i386, 7.2) and Bochs (Debian's bochs, 2.7), one
# after the other in every round, ROUNDS rounds, so all of them see the
# same load on a noisy host. Every run's COM1 output must be the guest's
# checksum, the same everywhere (a wrong answer fails the script). Prints
# each median and the ratios of medians against QEMU and Bochs, raw and
# with each emulator's start-up (the `empty` guest: its firmware, its
# process) taken off.
#
#   scripts/bench-suite.sh                 # every guest, 3 rounds
#   ROUNDS=5 GUESTS="lcg fib" scripts/bench-suite.sh
#   ENGINES="interp bt kvm" scripts/bench-suite.sh   # KVM too (where the
#                                          # host's KVM runs the guest)
#   XV6=0 scripts/bench-suite.sh           # without xv6 (below)
#   SCALE=4 REFS=qemu XV6=0 scripts/bench-suite.sh
#                                          # each guest's work times 4,
#                                          # against QEMU alone
#
# SCALE multiplies each guest's repeat count (fib: N grows by the
# Fibonacci steps nearest SCALE's factor). At SCALE=1 QEMU runs fib,
# prot16 and real16 in under 0.3 s beyond its 0.12-0.2 s start-up, whose
# own spread then moves their QEMU ratios by a quarter from run to run;
# at SCALE=4 the work outweighs it. REFS picks the reference emulators
# (default "qemu bochs"; Bochs takes some 40 s a round at SCALE=4).
#
# Then xv6, the suite's real workload: its boot and `usertests` on the
# same engines, QEMU and Bochs, alternated the same way, by
# scripts/bench-xv6.sh (ROUNDS rounds; Bochs the boot only; xv6's images
# from scripts/xv6-images.sh, which needs xv6's source: ../shared/guests
# or a download). Usertests on the interpreter take some 40 s a round.
#
# Needs qemu-system-x86 and bochs (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ENGINES=${ENGINES:-interp bt}
all_guests=$(cd lessons/guests/suite && ls *.S | sed 's/\.S$//' | grep -v '^empty$' | tr '\n' ' ')
GUESTS=${GUESTS:-$all_guests}
SCALE=${SCALE:-1}
REFS=${REFS:-qemu bochs}
MEM=128
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || { echo "SCALE must be a positive integer, not '$SCALE'" >&2; exit 2; }
for w in $REFS; do
    case $w in qemu | bochs) ;; *) echo "REFS: qemu and/or bochs, not '$w'" >&2; exit 2 ;; esac
done

need=()
if [[ " $REFS " == *" qemu "* ]]; then
    command -v qemu-system-i386 >/dev/null || need+=(qemu-system-x86)
fi
if [[ " $REFS " == *" bochs "* ]]; then
    command -v bochs-bin >/dev/null || need+=(bochs bochsbios bochs-sdl)
fi
# bochsbios links its VGA BIOS to vgabios's file without depending on the
# package: a fresh machine may have the link and not the file.
[ -e /usr/share/bochs/VGABIOS-lgpl-latest ] || need+=(vgabios)
if [ ${#need[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Each guest: a 512-byte flat image (ringlab) and a floppy image (QEMU,
# Bochs) with it as the boot sector.
# The guest's repeat count times SCALE (its `.ifndef` default read from
# its source); fib's N grows by log_phi(SCALE), rounded.
scaled() {
    local g=$1 name default
    [ "$SCALE" = 1 ] && return
    read -r name default < <(awk '/^ *\.ifndef/ { want = $2; next }
        want != "" && /\.equ/ { gsub(",", " "); print $2, $3; exit }' "lessons/guests/suite/$g.S")
    [ -n "$name" ] || return
    if [ "$g" = fib ]; then
        echo "--defsym $name=$(awk -v n="$default" -v s="$SCALE" 'BEGIN { printf "%d", n + log(s) / log(1.618034) + 0.5 }')"
    else
        echo "--defsym $name=$((default * SCALE))"
    fi
}
for g in empty $GUESTS; do
    # shellcheck disable=SC2046
    as --32 $(scaled "$g") -I lessons/guests/suite -o "$work/$g.o" "lessons/guests/suite/$g.S"
    ld -m elf_i386 -nostdlib -N -Ttext=0x7c00 -e start -o "$work/$g.elf" "$work/$g.o" 2>/dev/null
    objcopy -O binary -j .text "$work/$g.elf" "$work/$g.bin"
    [ "$(stat -c %s "$work/$g.bin")" = 512 ] || { echo "$g: not one sector" >&2; exit 1; }
    dd if=/dev/zero of="$work/$g.img" bs=512 count=2880 status=none
    dd if="$work/$g.bin" of="$work/$g.img" conv=notrunc status=none
    cat > "$work/$g.bochsrc" <<BOCHSRC
megs: $MEM
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
floppya: 1_44=$work/$g.img, status=inserted
boot: floppy
display_library: sdl2
sound: driver=dummy
com1: enabled=1, mode=file, dev=$work/$g.bochs-serial
cpu: model=p2_klamath, ips=100000000
clock: sync=none
log: $work/$g.bochs.log
panic: action=fatal
BOCHSRC
done
printf 'continue\nquit\n' > "$work/bochs-cmds"

# One run: wall seconds on stdout; its checksum in $work/out.
run() {
    local who=$1 g=$2 t0 t1
    t0=$(date +%s.%N)
    case $who in
        qemu)
            qemu-system-i386 -M pc -cpu pentium2 -m $MEM -display none -serial stdio \
                -monitor none -device isa-debug-exit,iobase=0xf4,iosize=4 -accel tcg \
                -drive file="$work/$g.img",if=floppy,format=raw -boot a \
                > "$work/out" 2>/dev/null || true ;;
        bochs)
            rm -f "$work/$g.bochs-serial"
            (cd "$work" && SDL_VIDEODRIVER=dummy bochs-bin -q -f "$g.bochsrc" -rc bochs-cmds \
                > /dev/null 2>&1) || true
            cp "$work/$g.bochs-serial" "$work/out" 2>/dev/null || : > "$work/out" ;;
        *)
            target/release/ringlab run --engine "$who" --mem $MEM --timeout 600 \
                "$work/$g.bin" > "$work/out" 2>/dev/null || true ;;
    esac
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

who_all="$ENGINES $REFS"
declare -A times sums
for r in $(seq "$ROUNDS"); do
    for g in empty $GUESTS; do
        for w in $who_all; do
            t=$(run "$w" "$g")
            sum=$(tr -d '\r' < "$work/out" | grep -E '^[0-9a-f]{8}$' | head -1 || true)
            if [ -z "$sum" ]; then
                echo "$g on $w: no checksum (output: $(head -c 200 "$work/out"))" >&2
                exit 1
            fi
            if [ -n "${sums[$g]:-}" ] && [ "${sums[$g]}" != "$sum" ]; then
                echo "$g on $w: checksum $sum, others gave ${sums[$g]}" >&2
                exit 1
            fi
            sums[$g]=$sum
            times[$g,$w]+="$t "
        done
    done
    echo "round $r of $ROUNDS done" >&2
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for g in empty $GUESTS; do
    for w in $who_all; do
        med[$g,$w]=$(echo "${times[$g,$w]}" | median)
    done
done

echo
echo "$(hostname), $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds, SCALE=$SCALE, medians in seconds;"
echo "net = median minus the same emulator's median for the empty guest (start-up)"
printf '%-9s %-9s' guest checksum
for w in $who_all; do printf ' %9s' "$w"; done
for w in $ENGINES; do for x in $REFS; do printf ' %14s' "$x/$w net"; done; done
echo
for g in empty $GUESTS; do
    printf '%-9s %-9s' "$g" "${sums[$g]}"
    for w in $who_all; do printf ' %9s' "${med[$g,$w]}"; done
    if [ "$g" != empty ]; then
        for w in $ENGINES; do
            for x in $REFS; do
                awk -v q="${med[$g,$x]}" -v e="${med[$g,$w]}" \
                    -v q0="${med[empty,$x]}" -v e0="${med[empty,$w]}" \
                    'BEGIN { d = e - e0; r = d > 0 ? sprintf("%.2f", (q - q0) / d) : "-"; printf " %14s", r }'
            done
        done
    fi
    echo
done

if [ "${XV6:-1}" != 0 ]; then
    echo
    echo "xv6: boot and usertests (scripts/bench-xv6.sh)"
    xv6_engines=""
    for w in $ENGINES; do
        case $w in interp | bt) xv6_engines+="$w " ;; esac
    done
    ROUNDS=$ROUNDS ENGINES="${xv6_engines}$REFS" KEEP=0 scripts/bench-xv6.sh
fi
