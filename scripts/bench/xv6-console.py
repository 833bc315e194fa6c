#!/usr/bin/env python3
"""Drives an emulator running xv6 through its serial console and times it.

Used by scripts/bench-xv6.sh for QEMU and Bochs, which (unlike ringlab's
--type-after) have no way to stop at the guest's prompt. It starts the
command in its own process group, reads the guest's console (the command's
stdout, or with --serial-file a file the emulator writes COM1 to), and:

  1. waits for the shell's first prompt `$ `: the boot time, from the
     start of the process (power-on) to the prompt;
  2. unless --boot-only: types `usertests` and a newline on the command's
     stdin, waits for `ALL TESTS PASSED` and the prompt after it: the
     usertests time, from the newline sent to that prompt;
  3. kills the emulator's process group.

Prints `boot SECONDS`, and `usertests SECONDS` and `total SECONDS`
(power-on to the last prompt) on stdout. The console
output is kept in --log. Exit status 0 when every wait succeeded, 1 on a
timeout or when the emulator ended first (the end of the console is
shown), 2 on bad usage. SIGTERM, SIGINT and SIGHUP kill the emulator too,
so a benchmark stopped half-way leaves none running.

  xv6-console.py [--boot-only] [--serial-file F] [--log F] [--stderr F]
                 [--timeout S] -- COMMAND ARGS...
"""
import argparse
import os
import select
import signal
import subprocess
import sys
import time

PROMPT = b"$ "
PASSED = b"ALL TESTS PASSED"


class Console:
    """The guest's output so far, read from a pipe or a growing file."""

    def __init__(self, proc, serial_file, log):
        self.proc = proc
        self.serial_file = serial_file
        self.fd = None if serial_file else proc.stdout.fileno()
        self.offset = 0
        self.text = b""
        self.log = log

    def _read(self, wait):
        """Appends what the console has; waits up to `wait` seconds."""
        if self.fd is not None:
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                return True
            data = os.read(self.fd, 65536)
            if not data:
                return False  # the emulator closed its stdout: it ended
        else:
            data = b""
            try:
                with open(self.serial_file, "rb") as f:
                    f.seek(self.offset)
                    data = f.read()
            except FileNotFoundError:
                pass
            if not data:
                if self.proc.poll() is not None:
                    return False
                time.sleep(min(wait, 0.005))
                return True
            self.offset += len(data)
        self.text += data
        self.log.write(data)
        self.log.flush()
        return True

    def wait_for(self, needle, start, deadline):
        """Reads until `needle` appears at or after offset `start`; returns
        the time it was seen and the offset just past it."""
        while True:
            at = self.text.find(needle, start)
            if at >= 0:
                return time.monotonic(), at + len(needle)
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"timed out waiting for {needle!r}", self)
            if not self._read(min(left, 0.05)):
                fail(f"the emulator ended before {needle!r}", self)


child = None


def kill_child():
    if child is not None and child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def fail(why, console):
    kill_child()
    tail = console.text[-600:].decode("latin-1") if console else ""
    sys.stderr.write(f"xv6-console: {why}; the console's end:\n{tail}\n")
    sys.exit(1)


def on_signal(signum, _frame):
    kill_child()
    sys.exit(128 + signum)


def main():
    global child
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boot-only", action="store_true")
    ap.add_argument("--serial-file")
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--stderr", help="where the emulator's stderr goes")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    if args.serial_file and os.path.exists(args.serial_file):
        os.unlink(args.serial_file)

    with open(args.log, "wb") as log, open(args.stderr or os.devnull, "wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL if args.serial_file else subprocess.PIPE,
            stderr=err if args.stderr else None,
            start_new_session=True,
        )
        console = Console(child, args.serial_file, log)
        deadline = start + args.timeout
        booted, after = console.wait_for(PROMPT, 0, deadline)
        print(f"boot {booted - start:.3f}", flush=True)
        if not args.boot_only:
            child.stdin.write(b"usertests\n")
            child.stdin.flush()
            sent = time.monotonic()
            _, after = console.wait_for(PASSED, after, deadline)
            done, _ = console.wait_for(PROMPT, after, deadline)
            print(f"usertests {done - sent:.3f}", flush=True)
            print(f"total {done - start:.3f}", flush=True)
    kill_child()


if __name__ == "__main__":
    main()
