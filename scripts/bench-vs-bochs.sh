#!/usr/bin/env bash
# Runs the compute benchmark guest (lessons/guests/compute.S: 900 M
# instructions of a tight integer and memory loop) on ringlab's interpreter
# and on Bochs 2.7, alternately, ROUNDS times each, and prints the wall
# times and the ratio of the medians. Used for BENCHMARKS.md.
#
# Needs: apt-get install bochs bochsbios bochs-sdl (the script installs them
# if apt-get is available and they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}

# (vgabios: bochsbios links its VGA BIOS to that package's file without
# depending on it.)
if ! command -v bochs-bin >/dev/null || [ ! -e /usr/share/bochs/VGABIOS-lgpl-latest ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq bochs bochsbios bochs-sdl vgabios
fi

cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$(ls -t target/release/build/lessons-*/out/compute.bin | head -1)
cp "$img" "$work/compute.bin"
dd if=/dev/zero of="$work/floppy.img" bs=512 count=2880 status=none
dd if="$img" of="$work/floppy.img" conv=notrunc status=none
cat > "$work/bochsrc" <<BOCHSRC
megs: 32
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
floppya: 1_44=$work/floppy.img, status=inserted
boot: floppy
display_library: sdl2
sound: driver=dummy
com1: enabled=1, mode=file, dev=$work/bochs-serial.out
cpu: model=p2_klamath, ips=100000000
clock: sync=none
log: $work/bochs.log
panic: action=fatal
BOCHSRC
printf 'continue\nquit\n' > "$work/cmds"

secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'; }
r=(); b=()
for i in $(seq "$ROUNDS"); do
    r+=("$(secs ./target/release/ringlab run "$work/compute.bin" --engine interp)")
    b+=("$(cd "$work" && SDL_VIDEODRIVER=dummy secs bochs-bin -q -f bochsrc -rc cmds)")
    echo "round $i: ringlab interp ${r[-1]} s, bochs ${b[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mr=$(median "${r[@]}"); mb=$(median "${b[@]}")
echo "checksum ringlab: $(./target/release/ringlab run "$work/compute.bin")  bochs: $(cat "$work/bochs-serial.out")"
awk -v r="$mr" -v b="$mb" 'BEGIN { printf "median: ringlab interp %.2f s (%.0f M insn/s), bochs %.2f s (%.0f M insn/s), ringlab is %.2fx bochs\n", r, 900 / r, b, 900 / b, b / r }'
