#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/launch.py - note when a command starts, then become it (for
bench/boot.sh).

  launch.py STARTFILE -- COMMAND [ARGS...]

Writes CLOCK_MONOTONIC in ns (the clock of the VMM's --heartbeat-log) to
STARTFILE, then execs COMMAND in this process: same PID, so the caller's
$! is the command's, and /proc/PID/status's VmHWM is the command's own
peak RSS (a fork would count this script's pages too). Exits 127 when
COMMAND cannot be run, 2 on bad usage.
"""
import os
import sys
import time


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: launch.py STARTFILE -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with open(sys.argv[1], "w") as f:
        f.write(f"{time.monotonic_ns()}\n")
    try:
        os.execvp(sys.argv[3], sys.argv[3:])
    except OSError as e:
        print(f"launch.py: {sys.argv[3]}: {e.strerror}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
