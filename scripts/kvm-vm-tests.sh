#!/usr/bin/env bash
# Runs the KVM engine's tests on real hardware virtualization: inside a
# QEMU (TCG) virtual machine whose CPU emulates AMD SVM with nested paging,
# booting Debian's kernel and loading its kvm-amd module, so /dev/kvm in
# there is genuine kvm_amd (this project's hosts only have kvm-pvm; see
# ARCHITECTURE.md, "KVM hosts"). Used by .ci/run.
#
# With --bench it runs the KVM benchmarks of BENCHMARKS.md in the VM
# instead (compute guest against the same loop natively, port 0x80 exits,
# the hello boot sector's wall time).
#
# Downloads and caches (in $RINGLAB_VM_CACHE, default target/kvm-vm) the
# Debian kernel package; installs qemu-system-x86 and busybox-static with
# apt-get when they are missing. Exits non-zero if any test fails or the VM
# does not report a result.
#
# QEMU never reads or writes the terminal this runs in: its stdin is
# /dev/null, the VM's serial console goes to a file, QEMU's own messages to
# another, and it runs in a session of its own (no controlling terminal).
# Under `timeout`, QEMU is outside the terminal's foreground process group:
# had it touched the terminal it would have been stopped (SIGTTIN/SIGTTOU),
# and its console output (ESC c, line wrap off) would have wrecked the
# user's screen. What the user sees are this script's own plain lines: one
# per test binary finished in the VM (or, with --bench, the VM's output with
# control characters removed). scripts/pty-check.sh, which scripts/test.sh
# runs this under, checks that it stays that way.
#
# Left in $RINGLAB_VM_REPORT (default: the cache directory) for
# scripts/test.sh's summary and for reading after a failure:
#   serial.log  the VM's serial console, as QEMU wrote it
#   qemu.log    QEMU's own messages
#   results     one line per test binary run in the VM:
#               NAME RC PASSED FAILED IGNORED (RC: its exit status;
#               the counts are "-" where it printed no `test result:`)
#   failed      the failed tests, NAME::TEST, one a line
#   skips       the checks skipped in the VM (the tests' RINGLAB_SKIP_LOG
#               lines, tests/src/skip.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${RINGLAB_VM_CACHE:-$root/target/kvm-vm}
report=${RINGLAB_VM_REPORT:-$cache}
bench=0
[ "${1:-}" = "--bench" ] && bench=1
# RINGLAB_VM_ONLY="protected kvm" runs only those test binaries (debugging).
only=${RINGLAB_VM_ONLY:-}
# RINGLAB_VM_UPDATE_SNAPSHOTS=1 lets insta write new or changed snapshots in
# the VM and copies them back into tests/tests/snapshots (review them with
# git diff before committing).
update=${RINGLAB_VM_UPDATE_SNAPSHOTS:-0}
mkdir -p "$cache" "$report"

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v tmux >/dev/null || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
    echo "kvm-vm: installing ${need[*]} with apt-get"
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" </dev/null
fi

# The newest Debian 6.1 kernel package, fetched once.
if ! ls "$cache"/linux-image-*.deb >/dev/null 2>&1; then
    pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
        | awk '{print $1}' | sort -V | tail -1)
    [ -n "$pkg" ] || { echo "kvm-vm: no linux-image-6.1.0-*-amd64 package known to apt" >&2; exit 1; }
    echo "kvm-vm: downloading $pkg (once, into $cache)"
    (cd "$cache" && apt-get download -qq "$pkg" </dev/null 2>/dev/null)
fi
deb=$(ls "$cache"/linux-image-*.deb | head -1)
if [ ! -d "$cache/kernel" ]; then
    dpkg-deb -x "$deb" "$cache/kernel"
fi
vmlinuz=$(ls "$cache"/kernel/boot/vmlinuz-* | head -1)
moddir=$(ls -d "$cache"/kernel/lib/modules/* | head -1)/kernel

# gdb for tests/tests/gdb.rs in the VM: Debian's gdb-minimal (gdb without
# Python, whose interpreter and library the VM does not have), fetched once
# and unpacked here, not installed (it conflicts with the host's gdb).
if ! ls "$cache"/gdb-minimal_*.deb >/dev/null 2>&1; then
    echo "kvm-vm: downloading gdb-minimal (once, into $cache)"
    (cd "$cache" && apt-get download -qq gdb-minimal </dev/null 2>/dev/null) || true
    ls "$cache"/gdb-minimal_*.deb >/dev/null 2>&1 \
        || { echo "kvm-vm: could not download Debian's gdb-minimal package (apt-get download gdb-minimal)" >&2; exit 1; }
fi
if [ ! -x "$cache/gdb-minimal/usr/bin/gdb" ]; then
    dpkg-deb -x "$(ls "$cache"/gdb-minimal_*.deb | head -1)" "$cache/gdb-minimal"
fi

# The test binaries, built for this host (the VM runs the same kernel ABI).
echo "kvm-vm: building the test binaries"
exes=()
tests=(kvm lessons protected robustness switch debugger rom platform platform_io platform_timers firmware_console firmware_disk firmware_system kvm_debug gdb xv6)
# Each by its name: cargo lists every executable it built or found fresh
# in the order their jobs end. Built for one package (its own features,
# not the workspace's), ringlab's binary and its test binary are both
# linked again, and either may end last: one run of scripts/test.sh took the binary for
# the test and the VM ran `ringlab --test-threads=1`.
test_exe() {
    grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep "/deps/$1-[0-9a-f]*\$" | tail -1
}
for t in "${tests[@]}"; do
    exe=$(cargo test --release -p tests --test "$t" --no-run --message-format=json 2>/dev/null \
        | test_exe "$t")
    [ -x "$exe" ] || { echo "kvm-vm: could not build the $t test binary" >&2; exit 1; }
    exes+=("$exe")
done

# The step UI in tmux (frontend/tests/step_tui.rs): its xv6 system call on
# KVM. The test runs the ringlab binary from the path cargo built it at.
step_tui=$(cargo test --release -p ringlab --test step_tui --no-run --message-format=json 2>/dev/null \
    | test_exe step_tui)
[ -x "$step_tui" ] || { echo "kvm-vm: could not build the step_tui test binary" >&2; exit 1; }
cargo build --release -q -p ringlab

# The initramfs: busybox, the modules, the test binary and its libraries.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ir=$work/initramfs
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,modules,tests}
cp /bin/busybox "$ir/bin/"
for t in sh mount insmod poweroff ls cat echo time grep ifconfig; do ln -s busybox "$ir/bin/$t"; done
for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko drivers/crypto/ccp/ccp.ko arch/x86/kvm/kvm-amd.ko; do
    cp "$moddir/$m" "$ir/modules/"
done
for i in "${!tests[@]}"; do cp "${exes[$i]}" "$ir/tests/${tests[$i]}"; done
cp "$step_tui" "$ir/tests/step_tui"
mkdir -p "$ir$root/target/release"
cp target/release/ringlab "$ir$root/target/release/ringlab"
# tmux, with the C.UTF-8 locale (tmux draws the UI's box characters only
# in a UTF-8 locale) and the terminal descriptions.
mkdir -p "$ir/usr/lib/locale" "$ir/lib"
cp -r /usr/lib/locale/C.utf8 "$ir/usr/lib/locale/"
cp -r /lib/terminfo "$ir/lib/"
# The protected-mode and robustness guests are assembled when their tests
# run: GNU as, ld and objcopy come along.
mkdir -p "$ir/usr/bin"
for t in as ld objcopy tmux; do cp -L "$(command -v $t)" "$ir/usr/bin/$t"; done
cp "$cache/gdb-minimal/usr/bin/gdb" "$ir/usr/bin/gdb"
# xv6's images, built here (the VM has no compiler): /xv6 in the VM.
mkdir -p "$ir/xv6"
xv6_out=$(scripts/xv6-images.sh) \
    || { echo "kvm-vm: scripts/xv6-images.sh could not build xv6's images (see above)" >&2; exit 1; }
mapfile -t xv6_images <<< "$xv6_out"
cp "${xv6_images[0]}" "$ir/xv6/xv6.img"
cp "${xv6_images[1]}" "$ir/xv6/fs.img"

# insta reads the snapshots from the source tree's path; the platform
# guests are assembled from it too (tests/src/platform.rs).
mkdir -p "$ir$root/tests/tests"
cp -r tests/tests/snapshots "$ir$root/tests/tests/"
cp -r tests/guests "$ir$root/tests/"
echo "$root" > "$ir/tests/root"
echo "$only" > "$ir/tests/only"
echo "$update" > "$ir/tests/update"
if [ $bench = 1 ]; then
    cargo build --release -q
    cp target/release/ringlab "$ir/tests/"
    out=$(ls -td target/release/build/lessons-*/out | head -1)
    cp "$out/compute.bin" "$out/hello.bin" "$out/nanobench.bin" "$ir/tests/"
    as --32 -o "$work/nl.o" scripts/bench/native-loop.S
    ld -m elf_i386 -o "$ir/tests/native-loop" "$work/nl.o"
    # 100,000 exits: under emulated SVM one costs some 100-200 us.
    as --32 --defsym COUNT=100000 -o "$work/p80.o" scripts/bench/port80.S
    ld -m elf_i386 -nostdlib -Ttext=0x7c00 -e start -o "$work/p80.elf" "$work/p80.o"
    objcopy -O binary -j .text "$work/p80.elf" "$ir/tests/port80.bin"
    # The timer interrupt cost: the same spin loop without and with a
    # 1 kHz PIT (divisor 1193; at 10 kHz the emulated SVM spends all its time
    # in interrupt exits).
    for d in 0 1193; do
        as --32 --defsym LOOPS=500000000 --defsym DIVISOR=$d -o "$work/t$d.o" scripts/bench/timer-irq.S
        ld -m elf_i386 -nostdlib -Ttext=0x7c00 -e start -o "$work/t$d.elf" "$work/t$d.o"
        objcopy -O binary -j .text "$work/t$d.elf" "$ir/tests/timer$d.bin"
    done
fi
for bin in "${exes[@]}" target/release/ringlab "$ir"/usr/bin/*; do
    [ -e "$bin" ] || continue
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$ir$(dirname "$lib")"
        cp -L "$lib" "$ir$lib"
    done
done
cat > "$ir/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Pseudo-terminals, for tmux.
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
# The loopback interface, for the gdb tests' connections to 127.0.0.1.
ifconfig lo 127.0.0.1 up
for m in irqbypass kvm ccp kvm-amd; do insmod /modules/$m.ko; done
ls -l /dev/kvm
cd /tests
if [ -x ./ringlab ]; then
    for i in 1 2 3; do
        echo "== native loop"; time ./native-loop
        echo "== compute on kvm"; ./ringlab run compute.bin --engine kvm --stats 2>&1 | grep -E "wall|stop"
        echo "== port80 on kvm"; ./ringlab run port80.bin --engine kvm --stats 2>&1 | grep -E "wall|exits: io"
        # Whole commands, ten in a row (busybox time has 10 ms steps).
        echo "== 10 x process start (baseline)"
        time sh -c 'for i in 0 1 2 3 4 5 6 7 8 9; do ./ringlab lessons; done > /dev/null'
        echo "== 10 x hello on interp (baseline)"
        time sh -c 'for i in 0 1 2 3 4 5 6 7 8 9; do ./ringlab run hello.bin --engine interp; done > /dev/null'
        echo "== 10 x hello on kvm"
        time sh -c 'for i in 0 1 2 3 4 5 6 7 8 9; do ./ringlab run hello.bin --engine kvm; done > /dev/null'
        ./ringlab run hello.bin --engine kvm --stats 2>&1 | grep -E "wall|setup"
        echo "== nanobench on kvm"; ./ringlab run nanobench.bin --engine kvm
        for d in 0 1193; do
            echo "== timer (divisor $d) on kvm"
            ./ringlab run timer$d.bin --engine kvm --stats 2>&1 | grep -E "wall|exits|injected"
        done
    done
    # The nanobenchmark table, every engine (the interpreter and the
    # translator run under TCG here: their column is TCG's speed).
    echo "== ringlab bench"; ./ringlab bench --compute-timeout 20
    echo "RINGLAB-KVM-TESTS rc=0"
else
    export RINGLAB_REQUIRE_KVM=1 INSTA_UPDATE=no CI=true INSTA_WORKSPACE_ROOT=$(cat root)
    if [ "$(cat update)" = 1 ]; then export INSTA_UPDATE=always; unset CI; fi
    export PATH=/bin:/usr/bin TMPDIR=/tmp
    # The skip protocol (tests/src/skip.rs): the log is printed between
    # marker lines at the end for the host's summary.
    export RINGLAB_SKIP_LOG=/tmp/skips
    : > /tmp/skips
    # kvm, lessons: KVM against the interpreter and the shared snapshots.
    # protected: every guest of the interpreter's protected-mode tests,
    # cross-checked on KVM (tests/src/guest.rs). robustness: the guest
    # that touches physical addresses outside RAM, cross-checked likewise
    # (its random-code tests are the interpreter's alone).
    only=$(cat only)
    want() { [ -z "$only" ] || echo " $only " | grep -q " $1 "; }
    rc=0
    # Runs one test binary between marker lines, from which the host
    # parses its `test result:` line and exit status. No colours: the
    # console is a terminal, and the host parses this text.
    run() {
        name=$1
        shift
        want "$name" || return 0
        echo "RINGLAB-BIN-BEGIN $name"
        ./"$name" --test-threads=1 --color never "$@"
        r=$?
        echo "RINGLAB-BIN-END $name rc=$r"
        [ $r = 0 ] || rc=1
    }
    run kvm --nocapture
    run lessons --nocapture
    run protected
    run robustness physical_addresses_outside_ram
    # switch: a running machine moved interpreter -> KVM -> interpreter.
    run switch --nocapture kvm
    # debugger: the commands of `ringlab step`, single-stepping KVM.
    run debugger --nocapture kvm
    # kvm_debug: breakpoints (INT3 patches, debug registers) and
    # watchpoints on KVM against the interpreter.
    run kvm_debug --nocapture
    # rom: booting a firmware ROM from the reset vector (read-only slots).
    run rom --nocapture
    # platform: driver-style guests of the PC platform's chips (disks,
    # keyboard, RTC, APICs, COM1) with one transcript on every engine.
    run platform --nocapture
    run platform_io --nocapture
    # platform_timers: the RTC, the local APIC and the I/O APIC driven by
    # interrupt handlers (kvm-pvm cannot IRET without paging).
    run platform_timers --nocapture
    # firmware_*: ringlab's BIOS booting boot sectors that use its services.
    run firmware_console --nocapture
    run firmware_disk --nocapture
    run firmware_system --nocapture
    # gdb: Debian's gdb (gdb-minimal here) against the gdb server on
    # every engine, KVM's transcript against the same snapshot.
    RINGLAB_GDB=/usr/bin/gdb run gdb --nocapture
    # xv6 on KVM: the scripted session against the interpreter's
    # snapshot and usertests to ALL TESTS PASSED (the interpreter's own
    # xv6 runs would take long under TCG). Local APIC reads need no exit
    # (engine-kvm's apic_shadow); before that every spinlock's read of
    # the APIC ID was an exit of some 100 us here and the session did not
    # finish in 600 s. Measured here: the session 7-13 s, usertests
    # 190-340 s. And a_system_call_in_the_debugger_on_kvm: initcode's
    # exec, its INT stepped and trapret's IRET back to user mode run on
    # KVM (the way to each on the interpreter: a breakpoint on a user
    # page is compared with the PC while single-stepping here). And Debian's gdb
    # (gdb-minimal) on xv6's kernel on KVM: the transcript of the
    # interpreter's snapshot (kernel breakpoints are HLT patches here,
    # the watchpoint on ticks single-steps into the timer's handler).
    LC_ALL=C.UTF-8 RINGLAB_GDB=/usr/bin/gdb RINGLAB_XV6_IMAGES=/xv6 run xv6 --nocapture \
        a_scripted_session_on_kvm usertests_pass_on_kvm a_system_call_in_the_debugger_on_kvm \
        gdb_on_the_xv6_kernel_on_kvm
    # The same system call in the step UI, in tmux at 80x24, on KVM.
    LC_ALL=C.UTF-8 RINGLAB_XV6_IMAGES=/xv6 run step_tui --nocapture an_xv6_system_call_ring_3_to_0_and_back_on_kvm_at_80x24
    echo "RINGLAB-SKIPS-BEGIN"
    cat /tmp/skips
    echo "RINGLAB-SKIPS-END"
    if [ "$(cat update)" = 1 ]; then
        for f in "$(cat root)"/tests/tests/snapshots/*.snap; do
            echo "RINGLAB-SNAP-BEGIN $(basename "$f")"; cat "$f"; echo "RINGLAB-SNAP-END"
        done
    fi
    echo "RINGLAB-KVM-TESTS rc=$rc"
fi
poweroff -f
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

log=$report/serial.log
qlog=$report/qemu.log
rm -f "$log" "$qlog" "$report/results" "$report/failed" "$report/skips"
: > "$log"
# -nodefaults -display none -monitor none: no stdio character device at all
# (-nographic would put the serial port and the monitor on this terminal);
# the serial port, which the kernel's console uses, writes to $log. setsid
# (which execs, as timeout's child it need not fork) gives QEMU a session
# without a controlling terminal: it could not even open /dev/tty.
echo "kvm-vm: booting the VM (QEMU TCG with SVM; serial console in $log)"
timeout 1500 setsid qemu-system-x86_64 -accel tcg -cpu max -m 2048 -no-reboot \
    -nodefaults -display none -monitor none -serial "file:$log" \
    -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null >"$qlog" 2>&1 &
qemu=$!
# Stops QEMU if this script is interrupted (Ctrl-C reaches this script's
# process group, not QEMU's session); timeout passes the signal on.
trap 'kill "$qemu" 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Plain progress lines from the serial log while the VM runs: one per test
# binary (with --bench, every line of the VM's output). Control characters
# are removed: nothing the VM prints reaches the terminal as it is.
progress() {
    local line last="" name LC_ALL=C
    while IFS= read -r line; do
        line=${line//[$'\001'-$'\010'$'\013'-$'\037'$'\177']/}
        if [ $bench = 1 ]; then
            echo "vm| $line"
            continue
        fi
        case $line in
            "test result: "*)
                # Without the always-0 "measured" and the filter's count.
                last=${line#test result: }
                last=${last/ 0 measured;/}
                last=$(echo "$last" | sed 's/ [0-9]* filtered out;//')
                ;;
            "RINGLAB-BIN-BEGIN "*) last="" ;;
            "RINGLAB-BIN-END "*)
                name=${line#RINGLAB-BIN-END }
                status=""
                [ "${name##* }" = rc=0 ] || status=" (exit status ${name##*rc=})"
                echo "kvm-vm: ${name% rc=*}: ${last:-no test result line}$status"
                ;;
        esac
    done
}
tail -n +1 -f --pid="$qemu" "$log" 2>/dev/null | progress &
follower=$!
qrc=0
wait "$qemu" || qrc=$?
wait "$follower" || true
if [ $qrc = 124 ]; then
    echo "kvm-vm: the VM did not finish within 1500 s (timeout)" >&2
fi

# The results for scripts/test.sh's summary, from the marker lines.
LC_ALL=C tr -d '\r' < "$log" | LC_ALL=C awk -v dir="$report" '
    { gsub(/\033\[[0-9;?]*[A-Za-z]/, "") }
    /^RINGLAB-BIN-BEGIN / { bin = $2; p = f = i = "-"; nfail = 0; next }
    /^RINGLAB-BIN-END / {
        rc = $3; sub(/^rc=/, "", rc)
        print bin, rc, p, f, i > (dir "/results")
        bin = ""; next
    }
    bin != "" && /^failures:$/ { nfail = 0; next }
    bin != "" && /^    [^ ]+$/ { names[++nfail] = $1; next }
    bin != "" && /^test result: / {
        p = count($0, "passed"); f = count($0, "failed"); i = count($0, "ignored")
        if (f + 0 > 0)
            for (k = 1; k <= nfail; k++) print bin "::" names[k] > (dir "/failed")
        next
    }
    /^RINGLAB-SKIPS-BEGIN$/ { skips = 1; printf "" > (dir "/skips"); next }
    /^RINGLAB-SKIPS-END$/ { skips = 0; next }
    skips { print > (dir "/skips") }
    function count(s, what,   r) {
        if (!match(s, "[0-9]+ " what)) return "-"
        r = substr(s, RSTART, RLENGTH); sub(/ .*/, "", r); return r
    }'
touch "$report/results" "$report/failed" "$report/skips"

if [ "$update" = 1 ]; then
    # The console turns \n into \r\n; the snapshots are written back as
    # insta wrote them.
    tr -d '\r' < "$log" | awk -v dir=tests/tests/snapshots '
        /^RINGLAB-SNAP-BEGIN / { f = dir "/" $2; printf "" > f; next }
        /^RINGLAB-SNAP-END/ { close(f); f = ""; next }
        f != "" { print >> f }'
    echo "kvm-vm: snapshots copied back; review them with git diff"
fi
if ! tr -d '\r' < "$log" | grep -q "^RINGLAB-KVM-TESTS rc=0"; then
    # The output of each failed test binary (its last 150 lines), or, if
    # none failed (the VM did not get that far), the end of the console,
    # and QEMU's messages say why; shown without control characters.
    echo "kvm-vm: the KVM tests failed in the VM (QEMU exit status $qrc)" >&2
    shown=0
    while read -r name rc _; do
        [ "$rc" != 0 ] || continue
        echo "kvm-vm: the output of $name in the VM (exit status $rc; all of it in $log):" >&2
        LC_ALL=C tr -d '\r\000-\010\013-\037\177' <"$log" \
            | sed -n "/^RINGLAB-BIN-BEGIN $name\$/,/^RINGLAB-BIN-END $name /p" \
            | tail -n 150 | sed 's/^/vm| /' >&2
        shown=1
    done <"$report/results"
    if [ $shown = 0 ]; then
        echo "kvm-vm: the end of $log:" >&2
        tail -n 40 "$log" | LC_ALL=C tr -d '\r\000-\010\013-\037\177' | sed 's/^/vm| /' >&2
    fi
    if [ -s "$qlog" ]; then
        echo "kvm-vm: QEMU's messages ($qlog):" >&2
        LC_ALL=C tr -d '\r\000-\010\013-\037\177' < "$qlog" | sed 's/^/qemu| /' >&2
    fi
    exit 1
fi
echo "kvm-vm: the KVM tests passed on kvm_amd inside QEMU/SVM"
