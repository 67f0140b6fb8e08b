#!/usr/bin/env python3
"""tcpproxy.py - a TCP relay for migration tests: the wire between source
and destination, which a test can slow down, corrupt or cut.

  tcpproxy.py LISTEN_PORT TARGET_PORT [--rate BYTES_PER_S] [--corrupt-at N]

Every accepted connection is relayed to 127.0.0.1:TARGET_PORT. --rate
limits the source-to-destination direction of the FIRST connection (the
main one; the urgent connection of post-copy stays fast). --corrupt-at N
flips one bit of byte N of that same stream (counted from its first byte).
SIGTERM or SIGKILL cuts every connection at once: both ends see the
connection break, as with a failed link. Prints "ready" once listening.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time


def pump(src, dst, rate, corrupt_at):
    sent = 0
    t0 = time.monotonic()
    try:
        while True:
            data = src.recv(65536 if not rate else min(65536, max(1, rate // 50)))
            if not data:
                break
            if corrupt_at is not None and sent <= corrupt_at < sent + len(data):
                b = bytearray(data)
                b[corrupt_at - sent] ^= 0x10
                data = bytes(b)
            dst.sendall(data)
            sent += len(data)
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("target", type=int)
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--corrupt-at", type=int, default=None)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.listen))
    ls.listen(8)
    print("ready", flush=True)
    n = 0
    while True:
        c, _ = ls.accept()
        t = socket.create_connection(("127.0.0.1", a.target))
        for s in (c, t):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = n == 0
        n += 1
        threading.Thread(target=pump, daemon=True,
                         args=(c, t, a.rate if first else 0,
                               a.corrupt_at if first else None)).start()
        threading.Thread(target=pump, daemon=True,
                         args=(t, c, 0, None)).start()


if __name__ == "__main__":
    sys.exit(main())
