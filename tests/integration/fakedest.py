#!/usr/bin/env python3
"""fakedest.py - a destination that lies, for migration tests: it speaks
valid frames (proto/: header, CRC32C) in an order no real destination
would, to check that the source refuses them and keeps its VM.

  fakedest.py PORT --script running-early

running-early: HELLO -> HELLO_ACK (caps 0: pre-copy only), every SYNC
echoed, and once STATE_END arrives RUNNING at once - no READY, so no GO
was ever sent. Prints "ready" once listening and "sent RUNNING" when it
has; then it reads until the source closes the connection.

lacking-huge, lacking-outside, lacking-overlap: a paused post-copy
source resumes to it; it answers RESUME with a DISCARD of the pages it
"lacks" that no real destination sends: one run of 2^32-1 pages, a run
past guest RAM, or two runs that overlap. Prints "sent DISCARD".
"""
import argparse
import socket
import struct
import sys

MAGIC = 0x4D49474D
HELLO, HELLO_ACK, STATE_END, RUNNING, SYNC = 1, 2, 6, 9, 12
DISCARD, RESUME = 13, 19

# The runs (gpa, npages) each lacking-* script claims.
LACKING = {
    "lacking-huge": [(0, 0xFFFFFFFF)],
    "lacking-outside": [(1 << 44, 1)],
    "lacking-overlap": [(0x100000, 16), (0x104000, 16)],
}


def crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def frame(ftype, payload=b""):
    hdr = struct.pack("<IHHII", MAGIC, ftype, 0, len(payload), 0)
    crc = crc32c(hdr + payload)
    return struct.pack("<IHHII", MAGIC, ftype, 0, len(payload), crc) + payload


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            return None
        buf += d
    return buf


def frames(s):
    while True:
        hdr = read_exact(s, 16)
        if hdr is None:
            return
        magic, ftype, _, length, _ = struct.unpack("<IHHII", hdr)
        if magic != MAGIC:
            sys.exit("fakedest: bad magic from the source")
        payload = read_exact(s, length) if length else b""
        if payload is None:
            return
        yield ftype, payload


def running_early(conn):
    for ftype, _ in frames(conn):
        if ftype == HELLO:
            conn.sendall(frame(HELLO_ACK, struct.pack("<Q", 0)))
        elif ftype == SYNC:
            conn.sendall(frame(SYNC))
        elif ftype == STATE_END:
            conn.sendall(frame(RUNNING))
            print("sent RUNNING", flush=True)


def lacking(conn, runs):
    for ftype, _ in frames(conn):
        if ftype == RESUME:
            body = struct.pack("<I", len(runs))
            for gpa, npages in runs:
                body += struct.pack("<QII", gpa, npages, 0)
            conn.sendall(frame(DISCARD, body))
            print("sent DISCARD", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--script", choices=["running-early"] + sorted(LACKING), required=True)
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(1)
    print("ready", flush=True)
    conn, _ = ls.accept()
    try:
        if a.script in LACKING:
            lacking(conn, LACKING[a.script])
        else:
            running_early(conn)
    except OSError:
        pass


if __name__ == "__main__":
    main()
