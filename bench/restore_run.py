#!/usr/bin/env python3
"""bench/restore_run.py - one timed restore for bench/restore.sh.

    restore_run.py VMMCTL SNAP DIR NAME [BOOT-ARGS...]

Starts `vmmctl boot --restore SNAP BOOT-ARGS`, asks the guest to verify its
dirty region as soon as the control socket answers (the verify reads every
page of it: the working set touched once), and prints one JSON object:

  restore_us     the VMM's own figure: file opened -> vCPUs running
  first_hb_ms    command start -> first heartbeat of the restored guest
                 (the heartbeat log's CLOCK_MONOTONIC against ours)
  ws_touched_ms  command start -> the guest's verify-ok marker seen
                 (status polled every 2 ms)
  faults         second-level faults taken by then (stats faults.fetch)
  restore        status "restore" at that moment

With --record-ws in BOOT-ARGS it then waits for the recording window to
close and stores the working set into SNAP (vmmctl snapshot --ws).
"""
import json
import os
import socket
import subprocess
import sys
import time


def call(sock_path, cmd, args=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    req = {"id": 1, "cmd": cmd}
    if args:
        req["args"] = args
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError(f"{cmd}: connection closed")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if "id" in msg:
                s.close()
                if not msg.get("ok"):
                    raise RuntimeError(f"{cmd}: {msg.get('error')}")
                return msg["result"]


def main():
    vmmctl, snap, d, name = sys.argv[1:5]
    extra = sys.argv[5:]
    sock = os.path.join(d, name + ".sock")
    hb = os.path.join(d, name + ".hb")
    for f in (sock, hb):
        if os.path.exists(f):
            os.unlink(f)
    t0 = time.monotonic_ns()
    proc = subprocess.Popen(
        [vmmctl, "boot", "--restore", snap, "--api", sock,
         "--heartbeat-log", hb, "--serial", os.path.join(d, name + ".serial")]
        + extra, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(d, name + ".err"), "w"))
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name}: vmmctl boot exited {proc.returncode}")
            try:
                st = call(sock, "status")
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.0005)
        v0 = st["markers"]["verify-ok"]
        call(sock, "guest-request", {"request": "verify"})
        while True:
            st = call(sock, "status")
            if st["markers"]["verify-fail"]:
                raise RuntimeError(f"{name}: verify failed")
            if st["markers"]["verify-ok"] > v0:
                t_ws = time.monotonic_ns()
                break
            time.sleep(0.002)
        stats = call(sock, "stats")
        out = {
            "name": name,
            "restore_us": st["restore"]["restore_us"],
            "ws_touched_ms": (t_ws - t0) / 1e6,
            "faults": stats["faults"].get("fetch", {}).get("faults", 0),
            "restore": st["restore"],
        }
        deadline = time.monotonic() + 5
        first = None
        while first is None and time.monotonic() < deadline:
            with open(hb) as f:
                line = f.readline()
            if line.endswith("\n"):
                first = int(line.split()[1])
            else:
                time.sleep(0.01)
        out["first_hb_ms"] = (first - t0) / 1e6 if first else None
        if "--record-ws" in extra:
            while call(sock, "status")["restore"]["recording"]:
                time.sleep(0.05)
            out["ws"] = call(sock, "snapshot", {"ws": snap})
        call(sock, "stop")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
