#!/usr/bin/env bash
# Runs a command under a pseudo-terminal of its own and fails if it
# disturbed that terminal: scripts/test.sh runs its VM part
# (scripts/kvm-vm-tests.sh) through this, so that QEMU keeps away from the
# terminal the tests are started in (in a terminal QEMU was once stopped by
# SIGTTOU/SIGTTIN, and when it reached the terminal it sent ESC c, cleared
# the screen and turned line wrap off).
#
#   scripts/pty-check.sh [--report FILE] COMMAND [ARGS...]
#
# The command runs in `script` (util-linux), which makes a new pty the
# command's controlling terminal, with the command in its foreground
# process group, as in an interactive terminal. The check fails when
#
# - the pty's modes (`stty -g`, read inside it before and after the
#   command) differ,
# - a process of the command's session was stopped by the terminal
#   (state T for two looks a second apart: SIGTTOU or SIGTTIN, for touching
#   it from a background process group, as QEMU under `timeout` was); the
#   stopped process is killed so that the run ends now rather than at its
#   timeout, or
# - the command wrote any control character to the pty other than tab, CR
#   and LF: that covers every terminal-control sequence (ESC c, ESC [?7l,
#   ESC [2J, ...: all start with ESC or a C1 CSI, 0x9b, whose UTF-8 form
#   starts with 0xC2) as well as BEL, backspace and the like.
#
# What the command writes is passed on as plain lines, control characters
# removed; `script` itself reads nothing from this script's terminal (its
# stdin is /dev/null), so this terminal's modes are not touched either.
# The exit status is the command's, or 1 if the check failed. With
# --report FILE, FILE gets the command's exit status on its first line and
# the check's verdict on the next: "ok", or why it failed, a line a reason
# (for scripts/test.sh's summary, which must tell a failed check from a
# failed command).
#
#   scripts/pty-check.sh --self-test
#
# checks the check: a command that resets the terminal (ESC c), one that
# turns line wrap off (ESC [?7l) and one that changes the pty's modes
# (stty -echo) must each fail it, and a well-behaved one must pass. Run by
# scripts/test.sh before the VM part, so a check that cannot fail is caught.
set -euo pipefail

usage() {
    echo "usage: $0 [--report FILE] COMMAND [ARGS...] | --self-test" >&2
    exit 2
}
[ $# -gt 0 ] || usage
report=/dev/null
if [ "$1" = --report ]; then
    [ $# -gt 2 ] || usage
    report=$2
    shift 2
fi

if [ "$1" = --self-test ]; then
    self=$0
    expect() {
        local want=$1 out
        shift
        if out=$("$self" "$@" 2>&1); then
            got=pass
        else
            got=fail
        fi
        if [ "$got" != "$want" ]; then
            echo "pty-check: self-test: expected the check to $want for: $*" >&2
            printf '%s\n' "$out" | sed 's/^/pty-check: self-test| /' >&2
            exit 1
        fi
    }
    expect pass sh -c 'echo "plain output"; printf "a\ttab\r\n"'
    expect fail sh -c 'printf "\033c"'
    expect fail sh -c 'echo before; printf "\033[?7l"; echo after'
    expect fail sh -c 'printf "\302\233?7l"'
    expect fail sh -c 'stty -echo'
    # A background process group (timeout makes its own) touching the
    # terminal is stopped (SIGTTOU): the watch sees it long before the
    # timeout.
    expect fail sh -c 'exec timeout 60 sh -c "stty -echo"'
    expect fail sh -c 'timeout 60 sh -c "echo; read x"'
    echo "pty-check: self-test passed (it catches ESC c, ESC [?7l, C1 CSI, stty -echo, SIGTTOU, SIGTTIN)"
    exit 0
fi

command -v script >/dev/null || { echo "pty-check: needs script (util-linux)" >&2; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Interrupted (Ctrl-C reaches this script, not the command in its pty,
# which the hangup ends when script exits): no verdict.
trap 'exit 130' INT TERM
printf -v cmd '%q ' "$@"
# Inside the pty: the session's id (the shell script starts leads it), the
# modes before, the command, the modes after. stty reads the modes of its
# stdin, the pty.
inner="echo \$\$ > $dir/sid; stty -g > $dir/before && $cmd; rc=\$?; stty -g > $dir/after; exit \$rc"

# Every second: the processes of the command's session in state T (stopped
# by a signal: here SIGTTOU or SIGTTIN, nothing else stops them), from
# /proc (procps may be missing). One seen stopped twice in a row is
# recorded and killed.
watch() {
    local f line rest state sess pid comm seen="" now
    while [ ! -s "$dir/sid" ]; do
        [ -e "$dir/done" ] && return
        sleep 0.2
    done
    local sid
    sid=$(cat "$dir/sid")
    while [ ! -e "$dir/done" ]; do
        now=""
        for f in /proc/[0-9]*/stat; do
            read -r line 2>/dev/null <"$f" || continue
            # pid (comm) state ppid pgrp session ...; comm may hold spaces.
            rest=${line##*) }
            read -r state _ _ sess _ <<<"$rest"
            if [ "$sess" != "$sid" ] || [ "$state" != T ]; then
                continue
            fi
            pid=${line%% *}
            now="$now $pid "
            if [[ $seen == *" $pid "* ]]; then
                comm=${line#*(}
                comm=${comm%)*}
                echo "$comm (pid $pid)" >>"$dir/stopped"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        seen=$now
        sleep 1
    done
}
watch &
watcher=$!

# script copies everything written to the pty to its stdout; tee keeps the
# raw bytes for the check, and the user sees them as plain lines. -e: the
# command's exit status; /dev/null: no typescript file (the raw copy is
# $dir/raw). LF arrives as CR LF (the pty's onlcr): that CR is dropped, and
# of a line redrawn after CRs (a progress count) the last state is shown.
set +e
script -q -e -c "$inner" /dev/null </dev/null \
    | tee "$dir/raw" \
    | LC_ALL=C sed -u 's/\r$//; s/.*\r//; s/[\x00-\x08\x0b-\x1f\x7f]//g'
status=("${PIPESTATUS[@]}")
set -e
rc=${status[0]}
touch "$dir/done"
wait "$watcher" || true

verdict=()
if [ -s "$dir/stopped" ]; then
    verdict+=("$* had processes stopped by the terminal (SIGTTOU/SIGTTIN: they touched it from a background process group), killed: $(sort -u "$dir/stopped" | paste -s -d ',' -)")
fi
if [ ! -s "$dir/before" ] || [ ! -s "$dir/after" ]; then
    verdict+=("could not read the pty's modes (stty -g) before and after $*")
elif ! cmp -s "$dir/before" "$dir/after"; then
    verdict+=("$* changed the terminal's modes (stty -g before: $(cat "$dir/before"), after: $(cat "$dir/after"))")
fi
# Control characters other than TAB, LF, CR, and the C1 CSI (0x9b, as
# UTF-8 C2 9B; terminals that take UTF-8 read it as ESC [).
control='[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2\x9b'
if LC_ALL=C grep -q -a -P "$control" "$dir/raw"; then
    first=$(LC_ALL=C grep -n -a -P "$control" "$dir/raw" | head -n 1 | cat -v)
    verdict+=("$* wrote terminal-control characters to the terminal (first at line ${first:0:200})")
fi
if [ ${#verdict[@]} -gt 0 ]; then
    printf 'pty-check: %s\n' "${verdict[@]}" >&2
    printf '%s\n' "$rc" "${verdict[@]}" > "$report"
    exit 1
fi
printf '%s\n' "$rc" ok > "$report"
exit "$rc"
