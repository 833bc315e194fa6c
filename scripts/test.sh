#!/usr/bin/env bash
# The README's test command (and what .ci/run runs): every test of the
# workspace, then the KVM tests on real hardware virtualization, then a
# summary.
#
# 1. cargo test --workspace --release --no-fail-fast: unit tests, the 80286
#    conformance corpus, the protected-mode guests and the lessons on the
#    interpreter, each guest also on this host's KVM where it can run (on
#    kvm-pvm, or without /dev/kvm, the KVM runs that cannot happen are
#    skipped, each reported through RINGLAB_SKIP_LOG, tests/src/skip.rs).
# 2. Unless this host's KVM is hardware virtualization (kvm_intel or
#    kvm_amd), where step 1 already ran everything on it:
#    scripts/kvm-vm-tests.sh runs the KVM tests again inside a QEMU/SVM
#    virtual machine with a genuine kvm_amd, where nothing may skip. It runs
#    under scripts/pty-check.sh, in a pseudo-terminal of its own, which
#    fails if it changed the terminal's modes, wrote control sequences to
#    it or had a process stopped by it (SIGTTOU/SIGTTIN): QEMU must never
#    reach the user's terminal. The check's own self-test runs first, so it
#    is known to catch each of these.
# 3. A summary: the test binaries run on the host and in the VM with their
#    passed/failed/ignored counts (from the `test result:` lines), every
#    skipped check with its reason, and, if anything failed, what. The exit
#    status is non-zero then.
#
# It behaves the same in a terminal, in the background, under CI and with
# stdin closed: nothing it starts reads stdin (cargo test and the VM part
# get /dev/null) and nothing but plain lines reaches the terminal. When it
# has a terminal, it checks that the terminal's modes are as they were.
#
# Logs, kept for reading after a run, in $RINGLAB_TEST_LOGS (default
# target/test-logs): host.log (cargo test's output), skips-host, and vm/
# (serial.log, qemu.log, results, failed, skips; see kvm-vm-tests.sh).
#
# Installs what it needs with apt-get (GNU binutils, tmux, gdb, QEMU, and gcc,
# make and perl for xv6 here; busybox in kvm-vm-tests.sh). RINGLAB_NO_VM=1
# leaves out step 2 (refused when CI is set). For debugging,
# RINGLAB_TEST_ARGS replaces `--workspace` in step 1 (e.g.
# RINGLAB_TEST_ARGS="-p tests --test rom"; the summary says so) and
# RINGLAB_VM_ONLY="rom kvm" runs only those test binaries in the VM.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# Under CI (CI set, as .ci/run does) the KVM tests may not be left out: on a
# host without hardware virtualization the run would pass without them.
if [ -n "${CI+set}" ] && [ "${RINGLAB_NO_VM:-0}" = 1 ]; then
    echo "test.sh: RINGLAB_NO_VM=1 with CI set: under CI the KVM tests must run" >&2
    exit 2
fi
# Ctrl-C ends the run here, without a summary of a half-run (the VM part,
# in a pty session of its own, is ended by the hangup when its pty closes).
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

logs=${RINGLAB_TEST_LOGS:-$root/target/test-logs}
case $logs in /*) ;; *) logs=$root/$logs ;; esac
# Only this script's own files go (RINGLAB_TEST_LOGS may name any directory).
rm -rf "$logs/vm" "$logs/host.log" "$logs/skips-host" "$logs/host-results" "$logs/host-failed"
mkdir -p "$logs/vm"

# The terminal's modes, if there is one: compared at the end. tcgetattr is
# allowed from a background process group, so this never stops the script.
tty_modes() { { stty -g </dev/tty; } 2>/dev/null || true; }
tty_before=$(tty_modes)

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
# GNU binutils (as --32, ld -m elf_i386, objcopy) build the guest images in
# lessons/build.rs and in the tests.
if ! command -v as >/dev/null || ! command -v ld >/dev/null || ! command -v objcopy >/dev/null; then
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq binutils </dev/null
fi

# tmux runs `ringlab step` in a real terminal for its UI test
# (frontend/tests/step_tui.rs).
if ! command -v tmux >/dev/null; then
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq tmux </dev/null
fi

# gdb drives ringlab's gdb server (`run --gdb`) in tests/tests/gdb.rs.
if ! command -v gdb >/dev/null; then
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq gdb </dev/null
fi

# gcc, make, binutils and perl build xv6 for its tests (tests/tests/xv6.rs
# runs scripts/xv6-images.sh, which names the Debian packages this machine
# lacks). Asked again after an install: whether gcc needs gcc-multilib or
# libc6-dev can only be found out once gcc is there.
for _ in 1 2; do
    read -r -a xv6_packages <<<"$(scripts/xv6-images.sh --missing-packages)"
    [ ${#xv6_packages[@]} -gt 0 ] || break
    echo "test.sh: installing ${xv6_packages[*]} (to build xv6)"
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${xv6_packages[@]}" </dev/null
done

# QEMU with SeaBIOS is the reference PC that tests/tests/firmware_qemu.rs
# boots the firmware tests' boot sectors on (qemu-system-i386; the same
# package gives kvm-vm-tests.sh its qemu-system-x86_64, and pulls in
# SeaBIOS and its VGA BIOS).
if ! command -v qemu-system-i386 >/dev/null; then
    $sudo_cmd apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq qemu-system-x86 </dev/null
fi

# --- 1. the host ------------------------------------------------------------

# The skip protocol (tests/src/skip.rs): every skipped check appends a line.
# Absolute: each test binary runs in its own crate's directory.
export RINGLAB_SKIP_LOG=$logs/skips-host
: >"$RINGLAB_SKIP_LOG"

host_args=(--workspace)
if [ -n "${RINGLAB_TEST_ARGS:-}" ]; then
    read -r -a host_args <<<"$RINGLAB_TEST_ARGS"
fi
host_cmd="cargo test --release --no-fail-fast ${host_args[*]}"
host_label="cargo test ${host_args[*]}"
echo "test.sh: $host_cmd (output also in $logs/host.log)"
# --no-fail-fast: every test binary runs, so the summary can list every
# failure. stdin /dev/null: the same run in a terminal and without one.
start=$SECONDS
set +e
cargo test --release --no-fail-fast "${host_args[@]}" </dev/null 2>&1 | tee "$logs/host.log"
host_rc=${PIPESTATUS[0]}
set -e
host_time=$((SECONDS - start))

# --- 2. the VM --------------------------------------------------------------

vm=""          # why the VM part ran or did not
vm_rc=0
pty_verdict="" # scripts/pty-check.sh's verdict, where it ran
if [ "${RINGLAB_NO_VM:-0}" = 1 ]; then
    vm="left out (RINGLAB_NO_VM=1)"
elif [ ! -e /sys/module/kvm_pvm ] && { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; } \
    && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    vm="not needed: this host's KVM is hardware virtualization, the KVM tests ran on it above"
else
    vm="ran"
    echo "test.sh: this host has no hardware virtualization for KVM (kvm-pvm or no /dev/kvm):"
    echo "test.sh: running the KVM tests in a QEMU/SVM virtual machine"
    # The check must be able to fail: its self-test first.
    if ! scripts/pty-check.sh --self-test; then
        pty_verdict="the self-test of scripts/pty-check.sh failed: it would not catch a VM part that disturbs the terminal"
    fi
    start=$SECONDS
    set +e
    RINGLAB_VM_REPORT=$logs/vm scripts/pty-check.sh --report "$logs/vm/pty-check" scripts/kvm-vm-tests.sh
    vm_rc=$?
    set -e
    vm_time=$((SECONDS - start))
    # Where kvm-vm-tests.sh ended before the VM ran, its results are empty.
    touch "$logs/vm/results" "$logs/vm/failed" "$logs/vm/skips"
    # The report: kvm-vm-tests.sh's exit status, then the check's verdict.
    if [ -s "$logs/vm/pty-check" ]; then
        vm_rc=$(head -n 1 "$logs/vm/pty-check")
        [ -n "$pty_verdict" ] || pty_verdict=$(tail -n +2 "$logs/vm/pty-check" | paste -s -d ';' -)
    else
        [ -n "$pty_verdict" ] || pty_verdict="scripts/pty-check.sh gave no verdict (exit status $vm_rc)"
    fi
fi

tty_after=$(tty_modes)

# --- 3. the summary ---------------------------------------------------------

# Host: NAME RC PASSED FAILED IGNORED per test binary (RC "-": cargo does not
# tell; counts "-" where it printed no `test result:`, e.g. it crashed),
# in the format of kvm-vm-tests.sh's results; failed tests NAME::TEST.
LC_ALL=C tr -d '\r' <"$logs/host.log" | LC_ALL=C awk -v dir="$logs" '
    function flush() {
        if (bin != "") print bin, "-", p, f, i > (dir "/host-results")
        bin = ""
    }
    function count(s, what,   r) {
        if (!match(s, "[0-9]+ " what)) return "-"
        r = substr(s, RSTART, RLENGTH); sub(/ .*/, "", r); return r
    }
    # "     Running tests/kvm.rs (target/release/deps/kvm-0123456789abcdef)"
    # "     Running unittests src/lib.rs (target/release/deps/machine-...)"
    /^ +Running .*\(.*\)$/ {
        flush()
        path = $NF; gsub(/[()]/, "", path); sub(/.*\//, "", path)
        sub(/-[0-9a-f]+$/, "", path)
        # A crate'"'"'s unit tests: "(unit)" for its library, "(bin)" for
        # src/main.rs, "(NAME)" for src/bin/NAME.rs.
        kind = ""
        if ($2 == "unittests") {
            kind = $3; sub(/.*\//, "", kind); sub(/\.rs$/, "", kind)
            kind = "(" (kind == "lib" ? "unit" : kind == "main" ? "bin" : kind) ")"
        }
        bin = path kind
        p = f = i = "-"; nfail = 0; next
    }
    /^ +Doc-tests / { flush(); bin = $2 "(doc)"; p = f = i = "-"; nfail = 0; next }
    bin != "" && /^failures:$/ { nfail = 0; next }
    bin != "" && /^    [^ ]+$/ { names[++nfail] = $1; next }
    bin != "" && /^test result: / {
        p = count($0, "passed"); f = count($0, "failed"); i = count($0, "ignored")
        if (f + 0 > 0)
            for (k = 1; k <= nfail; k++) print bin "::" names[k] > (dir "/host-failed")
        flush(); next
    }
    END { flush() }'
touch "$logs/host-results" "$logs/host-failed"

# "N passed, F failed, I ignored" over a results file; the binaries without
# a result line counted apart.
totals() {
    awk '{ n++; if ($3 == "-") x++; else { p += $3; f += $4; i += $5 } }
        END { printf "%d test binar%s, %d passed, %d failed, %d ignored", n, (n == 1 ? "y" : "ies"), p, f, i
              if (x) printf ", %d without a result (crashed?)", x }' "$1"
}
# The binaries of a results file packed into lines: "name 12", with the
# failed and ignored counts where not 0; those with no tests (most
# doc-tests) only counted.
per_binary() {
    awk -v width="${COLUMNS:-100}" '
        $3 == 0 && $4 == 0 && $5 == 0 && ($2 == "-" || $2 == 0) { empty++; next }
        { s = $1 " " ($3 == "-" ? "no result" : $3)
          if ($4 != "-" && $4 > 0) s = s " (" $4 " FAILED)"
          if ($5 != "-" && $5 > 0) s = s " (" $5 " ignored)"
          if ($2 != "-" && $2 != 0) s = s " (exit " $2 ")"
          if (line != "" && length(line) + length(s) + 3 > width - 4) { print "    " line; line = "" }
          line = (line == "" ? s : line " · " s) }
        END { if (line != "") print "    " line
              if (empty) print "    (" empty " with no tests)" }' "$1"
}
sum_col() { awk -v c="$2" '$c != "-" { s += $c } END { print s + 0 }' "$1"; }

# Skips grouped by reason: a skip line is "BINARY::TEST: REASON", and a
# REASON of the form "WHAT: WHY" (the guest, lesson or run) is grouped by
# WHY, listing "TEST (WHAT, ...)" by binary under it. A kvm-pvm
# explanation's "; stopped at ADDRESS" is left out here (the log has the
# whole lines).
skip_groups() {
    awk -v width="${COLUMNS:-100}" '
        { who = $0; sub(/: .*/, "", who); reason = substr($0, length(who) + 3)
          bin = who; test = ""
          if (k = index(who, "::")) { bin = substr(who, 1, k - 1); test = substr(who, k + 2) }
          what = ""; why = reason
          if (index(reason, ": ")) { what = reason; sub(/: .*/, "", what); why = substr(reason, length(what) + 3) }
          if (k = index(why, "; stopped at ")) why = substr(why, 1, k - 1)
          if (!(why in n)) order[++groups] = why
          n[why]++
          if (!((why, bin) in nt)) { bins[why] = bins[why] "\n" bin; nt[why, bin] = 0 }
          if (!((why, bin, test) in whats)) { tests[why, bin, ++nt[why, bin]] = test; whats[why, bin, test] = "" }
          if (what != "" && index(", " whats[why, bin, test] ", ", ", " what ", ") == 0)
              whats[why, bin, test] = whats[why, bin, test] (whats[why, bin, test] == "" ? "" : ", ") what }
        END {
            for (g = 1; g <= groups; g++) {
                why = order[g]
                printf "  - %s [%d]\n", why, n[why]
                nb = split(substr(bins[why], 2), b, "\n")
                for (x = 1; x <= nb; x++) {
                    # The tests of this binary skipped for this reason, packed.
                    line = b[x] ": "; lead = line; gsub(/./, " ", lead)
                    for (j = 1; j <= nt[why, b[x]]; j++) {
                        t = tests[why, b[x], j]; w = whats[why, b[x], t]
                        e = (t == "" ? w : w == "" ? t : t " (" w ")")
                        if (j > 1 && length(line) + length(e) + 2 > width - 6) {
                            print "      " line ","; line = lead
                        } else if (j > 1) line = line ", "
                        line = line e
                    }
                    print "      " line
                }
            }
        }' "$1"
}

host_skips=$(wc -l <"$logs/skips-host")
vm_skips=0
[ -f "$logs/vm/skips" ] && vm_skips=$(wc -l <"$logs/vm/skips")

failures=()
[ "$host_rc" = 0 ] || failures+=("host: $host_cmd exited with status $host_rc (output: $logs/host.log)")
while read -r t; do failures+=("host: $t"); done <"$logs/host-failed"
while read -r name _ p _; do
    [ "$p" != "-" ] || failures+=("host: $name printed no test result (crashed, or did not build?)")
done <"$logs/host-results"
if [ "$vm" = ran ]; then
    [ "$vm_rc" = 0 ] || failures+=("VM: scripts/kvm-vm-tests.sh exited with status $vm_rc (logs: $logs/vm)")
    [ -f "$logs/vm/failed" ] && while read -r t; do failures+=("VM: $t"); done <"$logs/vm/failed"
    [ -f "$logs/vm/results" ] && while read -r name rc _; do
        [ "$rc" = 0 ] || failures+=("VM: $name exited with status $rc")
    done <"$logs/vm/results"
    [ "$pty_verdict" = ok ] || failures+=("terminal check: $pty_verdict")
fi
if [ "$tty_before" != "$tty_after" ]; then
    failures+=("this terminal's modes changed during the run (restored): before $tty_before, after $tty_after")
    { stty "$tty_before" </dev/tty; } 2>/dev/null || true
fi

passed=$(sum_col "$logs/host-results" 3)
failed=$(sum_col "$logs/host-results" 4)
if [ "$vm" = ran ]; then
    passed=$((passed + $(sum_col "$logs/vm/results" 3)))
    failed=$((failed + $(sum_col "$logs/vm/results" 4)))
fi
echo
echo "==================== scripts/test.sh: summary ===================="
# The skips first (on a kvm-pvm host they are many), so that what ran and
# what failed are the last lines on the screen.
skips="skipped checks: $host_skips on the host, $vm_skips in the VM"
if [ $((host_skips + vm_skips)) -gt 0 ]; then
    echo "$skips, by reason (the whole lines: $logs/skips-host, $logs/vm/skips):"
    [ "$host_skips" = 0 ] || { echo " on the host:"; skip_groups "$logs/skips-host"; }
    [ "$vm_skips" = 0 ] || { echo " in the VM:"; skip_groups "$logs/vm/skips"; }
    skips="$skips (listed above)"
fi
if [ -n "${RINGLAB_TEST_ARGS:-}" ]; then
    echo "(RINGLAB_TEST_ARGS: the host ran only: ${RINGLAB_TEST_ARGS})"
fi
echo "host, $host_label (${host_time} s): $(totals "$logs/host-results")"
per_binary "$logs/host-results"
if [ "$vm" = ran ]; then
    echo "VM, kvm_amd in QEMU/SVM (${vm_time} s): $(totals "$logs/vm/results")"
    per_binary "$logs/vm/results"
    echo "terminal check (pty-check.sh: the VM part in a pty of its own): $pty_verdict"
else
    echo "VM: $vm"
fi
if [ -n "$tty_before" ] && [ "$tty_before" = "$tty_after" ]; then
    echo "this terminal: its modes are as they were (stty -g)"
fi
echo "$skips"
if [ ${#failures[@]} -gt 0 ]; then
    echo "FAILED:"
    printf '  %s\n' "${failures[@]}"
fi
# The plain closing line: passed and failed tests over the host and the VM.
echo "total: $passed passed, $failed failed"
[ ${#failures[@]} -eq 0 ]
