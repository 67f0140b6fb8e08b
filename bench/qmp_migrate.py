#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/qmp_migrate.py - drive one QEMU live migration over QMP (for
bench/compare-qemu.sh). Standard library only.

  qmp_migrate.py --src SOCK --dst SOCK --uri tcp:127.0.0.1:PORT
                 [--downtime-limit MS] [--channels N] [--compress zstd]
                 [--postcopy] [--timeout S]
  qmp_migrate.py --cmd SOCK COMMAND [JSON-ARGUMENTS]

The first form sets the same capabilities on both QEMUs (multifd when
--channels N > 0, postcopy-ram with --postcopy), the parameters (the
downtime limit, unlimited bandwidth: QEMU 7.2's default cap is 32 MiB/s,
multifd-channels, multifd-compression), starts the destination's
migrate-incoming (it must run with -incoming defer), then the source's
migrate, and polls the source's query-migrate every 5 ms. With --postcopy
it issues migrate-start-postcopy once the first pass over RAM is over (the
second dirty-bitmap sync: ram.dirty-sync-count >= 2). It ends when the
migration is completed or failed, or after --timeout S (default 60), when
it cancels it (a pre-copy that does not converge: QEMU has no round
limit). It prints the source's last query-migrate as JSON with
"bench_state" (completed, failed, cancelled, timeout) and
"postcopy_started_ms" (ms from migrate to migrate-start-postcopy) added,
and exits 0 when the migration completed, 1 otherwise, 2 on bad usage.
The second form runs one command and prints its "return" as JSON.
"""
import argparse
import json
import socket
import sys
import time


class QmpError(Exception):
    pass


class Qmp:
    """One QMP connection: greeting, qmp_capabilities, then commands.
    Events that arrive between replies are dropped."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.path = path
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"{path}: no QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QmpError(f"{self.path}: QEMU closed the QMP socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QmpError(f"{self.path}: {name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")


def setup(qmp, opts, source):
    caps = [{"capability": "multifd", "state": opts.channels > 0},
            {"capability": "postcopy-ram", "state": opts.postcopy}]
    qmp.cmd("migrate-set-capabilities", {"capabilities": caps})
    params = {}
    if opts.channels > 0:
        params["multifd-channels"] = opts.channels
        params["multifd-compression"] = opts.compress
    if source:
        params["downtime-limit"] = opts.downtime_limit
        params["max-bandwidth"] = 1 << 40  # 1 TiB/s: no cap
        params["max-postcopy-bandwidth"] = 0  # 0: no cap
    if params:
        qmp.cmd("migrate-set-parameters", params)


def migrate(opts):
    src, dst = Qmp(opts.src), Qmp(opts.dst)
    setup(dst, opts, False)
    setup(src, opts, True)
    dst.cmd("migrate-incoming", {"uri": opts.uri})
    t0 = time.monotonic()
    src.cmd("migrate", {"uri": opts.uri})
    pc_ms = None
    state = "timeout"
    info = {}
    while True:
        info = src.cmd("query-migrate")
        status = info.get("status", "")
        if status in ("completed", "failed", "cancelled"):
            state = status
            break
        if opts.postcopy and pc_ms is None and status == "active" and \
                info.get("ram", {}).get("dirty-sync-count", 0) >= 2:
            src.cmd("migrate-start-postcopy")
            pc_ms = round((time.monotonic() - t0) * 1000, 1)
        if time.monotonic() - t0 > opts.timeout:
            if status in ("active", "setup", "pre-switchover"):
                src.cmd("migrate_cancel")
                while src.cmd("query-migrate").get("status") not in \
                        ("cancelled", "failed", "completed"):
                    time.sleep(0.01)
                info = src.cmd("query-migrate")
                state = "timeout"
                break
            # in post-copy: it cannot be cancelled; keep waiting
        time.sleep(0.005)
    info["bench_state"] = state
    info["postcopy_started_ms"] = pc_ms
    print(json.dumps(info))
    return 0 if state == "completed" else 1


def main():
    ap = argparse.ArgumentParser(description="one QEMU migration over QMP")
    ap.add_argument("--src")
    ap.add_argument("--dst")
    ap.add_argument("--uri")
    ap.add_argument("--downtime-limit", type=int, default=300)
    ap.add_argument("--channels", type=int, default=0)
    ap.add_argument("--compress", default="none", choices=["none", "zlib", "zstd"])
    ap.add_argument("--postcopy", action="store_true")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--cmd", nargs="+", metavar=("SOCK", "COMMAND"))
    opts = ap.parse_args()
    try:
        if opts.cmd:
            if len(opts.cmd) not in (2, 3):
                ap.error("--cmd SOCK COMMAND [JSON-ARGUMENTS]")
            args = json.loads(opts.cmd[2]) if len(opts.cmd) == 3 else None
            print(json.dumps(Qmp(opts.cmd[0]).cmd(opts.cmd[1], args)))
            return 0
        if not (opts.src and opts.dst and opts.uri):
            ap.error("--src, --dst and --uri are required")
        return migrate(opts)
    except (OSError, QmpError, ValueError) as e:
        print(f"qmp_migrate.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
