#!/usr/bin/env bash
# xv6 (MIT's teaching Unix) as a benchmark (issue 18, item 6): on one host,
# in one run, the time from power-on to the shell's first `$ ` prompt (the
# boot) and the time of `usertests` (typed at that prompt, until `ALL TESTS
# PASSED` and the prompt after it), on
#
#   interp  ringlab run --engine interp --mem 512 --snapshot
#           --disk xv6.img --disk fs.img --type-after '$ '
#   bt      the same with --engine bt
#   qemu    qemu-system-i386 -accel tcg -smp 1 -m 512 -nographic with the
#           drives of xv6's Makefile (QEMU 7.2 and SeaBIOS from Debian)
#   bochs   Bochs 2.7 from Debian, its own BIOS, 1 CPU at ips=10000000 (the
#           figure of xv6's dot-bochsrc), the disks on ATA 0, COM1 to a
#           file: the boot only
#
# with the same images (scripts/xv6-images.sh). Each measurement is
# repeated ROUNDS times; a round runs each engine once, one after the
# other (never two at a time), boots first, then usertests. Printed: every
# figure, the medians, the ratios (bt vs QEMU TCG on usertests, interp vs
# Bochs on the boot, each engine vs QEMU) and whether the issue's goals
# are met: bt at least as fast as QEMU TCG on usertests, interp at least
# 3x Bochs on the boot.
#
# How each is timed (wall clock, seconds):
#   - ringlab stops by itself at the prompt once its stdin has ended
#     (--type-after): the boot is the wall time of the whole process with
#     stdin /dev/null; usertests is the wall time of the process with
#     `usertests` on stdin, minus the median boot. --stats goes to
#     $work/<engine>-*.stats (the script prints the bt usertests run's
#     callouts to the interpreter and MMIO reads).
#   - QEMU and Bochs do not stop: scripts/bench/xv6-console.py starts them,
#     reads the console (QEMU's stdout, Bochs' COM1 file) and takes the
#     time at the first `$ ` (from the start of the process), types
#     `usertests`, takes the time from the newline to the prompt after
#     `ALL TESTS PASSED`, and kills the emulator. QEMU and Bochs get fresh
#     copies of the images each run (xv6 writes to fs.img).
#
#   scripts/bench-xv6.sh                 # 3 rounds
#   scripts/bench-xv6.sh -n 1            # 1 round (or ROUNDS=1)
#   ENGINES="bt qemu" scripts/bench-xv6.sh
#
# Installs what it needs with apt-get when missing: qemu-system-x86, and
# bochs, bochsbios, vgabios and bochs-sdl (Debian's Bochs has no `nogui`
# display library; SDL2 runs with SDL_VIDEODRIVER=dummy, no window).
# Needs python3 for the console driver. The console logs and Bochs' log
# stay in $work (printed at the end; deleted with KEEP=0).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
ENGINES=${ENGINES:-interp bt qemu bochs}
KEEP=${KEEP:-1}
# Seconds before a wait for the guest gives up (usertests on a slow engine
# takes minutes).
TIMEOUT=${TIMEOUT:-900}

while [ $# -gt 0 ]; do
    case $1 in
    -n | --rounds)
        ROUNDS=${2:?"$1 needs a number"}
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-xv6: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-xv6: ROUNDS must be a positive number" >&2; exit 2; }
want() { [[ " $ENGINES " == *" $1 "* ]]; }

# --- what it needs -----------------------------------------------------------

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
packages=()
want qemu && ! command -v qemu-system-i386 >/dev/null && packages+=(qemu-system-x86)
if want bochs; then
    command -v bochs-bin >/dev/null || packages+=(bochs)
    # (bochsbios links its VGA BIOS to vgabios's file without depending
    # on the package.)
    [ -e /usr/share/bochs/VGABIOS-lgpl-latest ] || packages+=(vgabios)
    [ -f /usr/share/bochs/BIOS-bochs-latest ] || packages+=(bochsbios)
    [ -f /usr/share/vgabios/vgabios.bin ] || packages+=(vgabios)
    ls /usr/lib/*/bochs/plugins/libbx_sdl2_gui.so >/dev/null 2>&1 || packages+=(bochs-sdl)
fi
if [ ${#packages[@]} -gt 0 ]; then
    echo "bench-xv6: installing ${packages[*]}"
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${packages[@]}" </dev/null
fi
command -v python3 >/dev/null || { echo "bench-xv6: needs python3" >&2; exit 3; }

cargo build --release -q -p ringlab
ringlab=$root/target/release/ringlab
mapfile -t images < <(scripts/xv6-images.sh)
xv6_img=${images[0]}
fs_img=${images[1]}
driver=$root/scripts/bench/xv6-console.py

work=$(mktemp -d -t bench-xv6.XXXXXX)
# The process running now (a ringlab, or the driver, which kills its
# emulator when signalled): stopped on any exit, so an interrupted or
# failed run leaves no emulator behind. Everything runs in the background
# and is waited for, so that the trap runs at once on a signal.
current=""
cleanup() {
    if [ -n "$current" ] && kill -0 "$current" 2>/dev/null; then
        kill "$current" 2>/dev/null || true
        wait "$current" 2>/dev/null || true
    fi
    if [ "$KEEP" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Bochs' configuration: xv6's dot-bochsrc does not run on Debian's Bochs as
# it is (two CPUs, a floppy /dev/fd0, a parallel port on /dev/stdout, and
# an fs.img geometry of 1024 sectors for its 1000), so this is a minimal
# one: the disks at the geometry of their size, COM1 to a file, no sound.
# Relative paths: Bochs runs in its run directory.
bochs_geometry_fs=$(($(stat -c %s "$fs_img") / 512))
cat >"$work/bochsrc" <<BOCHSRC
megs: 512
cpu: count=1, ips=10000000, reset_on_triple_fault=0
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
display_library: sdl2
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=disk, mode=flat, path="xv6.img", cylinders=100, heads=10, spt=10
ata0-slave: type=disk, mode=flat, path="fs.img", cylinders=$bochs_geometry_fs, heads=1, spt=1
boot: disk
com1: enabled=1, mode=file, dev=serial.out
clock: sync=none
sound: driver=dummy
mouse: enabled=0
log: bochs.log
panic: action=fatal
BOCHSRC
# Debian's Bochs is built with its debugger, which stops at the first
# instruction for a command.
printf 'continue\nquit\n' >"$work/bochs.rc"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# A run directory DIR with fresh copies of the images.
fresh() {
    rm -rf "$1"
    mkdir -p "$1"
    cp "$xv6_img" "$1/xv6.img"
    cp "$fs_img" "$1/fs.img"
}

# The runs below set `result` instead of printing it: a command
# substitution would run them in a subshell, out of the traps' reach.

# ringlab ENGINE boot|usertests ROUND: result = the process's wall time.
run_ringlab() {
    local engine=$1 what=$2 round=$3 t0 t1 status=0
    local base=$work/$engine-$what-$round
    local cmd=("$ringlab" run --engine "$engine" --mem 512 --snapshot
        --disk "$xv6_img" --disk "$fs_img" --type-after '$ ' --stats)
    t0=$(now)
    if [ "$what" = boot ]; then
        "${cmd[@]}" </dev/null >"$base.console" 2>"$base.stats" &
    else
        printf 'usertests\n' | "${cmd[@]}" >"$base.console" 2>"$base.stats" &
    fi
    current=$!
    wait "$current" || status=$?
    t1=$(now)
    current=""
    if [ "$status" -ne 0 ]; then
        echo "bench-xv6: ringlab $engine $what exited with status $status; see $base.*" >&2
        exit 1
    fi
    if [ "$what" = usertests ] && ! grep -q 'ALL TESTS PASSED' "$base.console"; then
        echo "bench-xv6: ringlab $engine: no ALL TESTS PASSED in $base.console" >&2
        exit 1
    fi
    result=$(elapsed "$t0" "$t1")
}

# qemu|bochs boot|usertests ROUND: result = the driver's figures ("boot S",
# "usertests S", "total S"; one a line).
run_driven() {
    local emu=$1 what=$2 round=$3 status=0
    local base=$work/$emu-$what-$round dir=$work/run
    local args=(--log "$base.console" --stderr "$base.stderr" --timeout "$TIMEOUT")
    [ "$what" = boot ] && args+=(--boot-only)
    fresh "$dir"
    if [ "$emu" = qemu ]; then
        (cd "$dir" && exec python3 "$driver" "${args[@]}" -- \
            qemu-system-i386 -accel tcg -smp 1 -m 512 -nographic \
            -drive file=fs.img,index=1,media=disk,format=raw \
            -drive file=xv6.img,index=0,media=disk,format=raw) >"$base.times" &
    else
        cp "$work/bochsrc" "$work/bochs.rc" "$dir/"
        (cd "$dir" && SDL_VIDEODRIVER=dummy exec python3 "$driver" "${args[@]}" \
            --serial-file "$dir/serial.out" -- \
            bochs-bin -q -f bochsrc -rc bochs.rc) >"$base.times" &
    fi
    current=$!
    wait "$current" || status=$?
    current=""
    [ -f "$dir/bochs.log" ] && cp "$dir/bochs.log" "$base.bochslog"
    if [ "$status" -ne 0 ]; then
        echo "bench-xv6: $emu $what failed (status $status); see $base.*" >&2
        exit 1
    fi
    result=$(cat "$base.times")
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# --- the runs ----------------------------------------------------------------

declare -A boot usertests
echo "bench-xv6: $ROUNDS round(s) of: ${ENGINES}; logs in $work"
for round in $(seq "$ROUNDS"); do
    for e in interp bt qemu bochs; do
        want "$e" || continue
        case $e in
        interp | bt)
            run_ringlab "$e" boot "$round"
            t=$result
            ;;
        *)
            run_driven "$e" boot "$round"
            t=$(awk '$1 == "boot" { print $2 }' <<<"$result")
            ;;
        esac
        boot[$e]+="$t "
        echo "round $round: $e boot $t s"
    done
    for e in interp bt qemu; do
        want "$e" || continue
        case $e in
        interp | bt)
            # The process's time less the boot's (the median so far of
            # this engine's boots): usertests from the prompt on.
            run_ringlab "$e" usertests "$round"
            whole=$result
            # shellcheck disable=SC2086 # a list of numbers
            t=$(awk -v w="$whole" -v b="$(median ${boot[$e]})" 'BEGIN { printf "%.3f", w - b }')
            echo "round $round: $e usertests $t s (whole process $whole s)"
            ;;
        *)
            run_driven "$e" usertests "$round"
            out=$result
            t=$(awk '$1 == "usertests" { print $2 }' <<<"$out")
            echo "round $round: $e usertests $t s (boot $(awk '$1 == "boot" { print $2 }' <<<"$out") s, whole $(awk '$1 == "total" { print $2 }' <<<"$out") s)"
            ;;
        esac
        usertests[$e]+="$t "
    done
done

# --- the report --------------------------------------------------------------

echo
echo "host:     $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "ringlab:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
want qemu && echo "qemu:     $(qemu-system-i386 --version | head -n 1)"
want bochs && echo "bochs:    $(bochs-bin --help 2>&1 | grep -o 'Bochs x86 Emulator [0-9.]*' | head -n 1) (Debian $(dpkg-query -W -f '${Version}' bochs 2>/dev/null || echo '?'))"
echo "rounds:   $ROUNDS"
echo
printf '%-7s %-28s %9s   %-28s %9s\n' engine "boot (s)" median "usertests (s)" median
declare -A mb mu
for e in interp bt qemu bochs; do
    want "$e" || continue
    # shellcheck disable=SC2086 # lists of numbers
    mb[$e]=$(median ${boot[$e]})
    mu[$e]=""
    # shellcheck disable=SC2086
    [ -n "${usertests[$e]:-}" ] && mu[$e]=$(median ${usertests[$e]})
    printf '%-7s %-28s %9s   %-28s %9s\n' "$e" "${boot[$e]}" "${mb[$e]}" "${usertests[$e]:--}" "${mu[$e]:--}"
done

# ratio A B: B / A, how many times faster A is than B (>1: A faster).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
echo
if want qemu; then
    for e in interp bt bochs; do
        want "$e" || continue
        line="$e vs QEMU TCG (QEMU time / $e time; >1: $e faster): boot $(ratio "${mb[$e]}" "${mb[qemu]}")"
        [ -n "${mu[$e]}" ] && line+=", usertests $(ratio "${mu[$e]}" "${mu[qemu]}")"
        echo "$line"
    done
fi
if want bt && want qemu; then
    r=$(ratio "${mu[bt]}" "${mu[qemu]}")
    met=$(awk -v r="$r" 'BEGIN { print (r >= 1 ? "met" : "NOT met") }')
    echo "goal: bt at least as fast as QEMU TCG on usertests: $met (bt ${mu[bt]} s, QEMU ${mu[qemu]} s, QEMU/bt $r)"
fi
if want interp && want bochs; then
    r=$(ratio "${mb[interp]}" "${mb[bochs]}")
    met=$(awk -v r="$r" 'BEGIN { print (r >= 3 ? "met" : "NOT met") }')
    echo "goal: interp at least 3x Bochs on the boot: $met (interp ${mb[interp]} s, Bochs ${mb[bochs]} s, Bochs/interp $r)"
fi
if want bt; then
    echo
    echo "bt usertests, --stats of round $ROUNDS ($work/bt-usertests-$ROUNDS.stats):"
    grep -E '^(instructions|wall time|speed|MMIO|local APIC|blocks translated|dispatcher entries|chained jumps|translated instructions run|instructions on the interpreter|interpreter share|instructions the interpreter ran|instructions left)' \
        "$work/bt-usertests-$ROUNDS.stats" | awk '!seen[$0]++' || true
    grep -E '^  to the interpreter' "$work/bt-usertests-$ROUNDS.stats" | head -n 8 || true
fi
if [ "$KEEP" != 0 ]; then
    echo
    echo "logs: $work"
fi
