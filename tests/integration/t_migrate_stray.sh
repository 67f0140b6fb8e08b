#!/usr/bin/env bash
# No VM lost to a connection that is not the source (issue 13):
#  1. a destination waiting for its first migration gets a port scan
#     (connect, close), garbage, a connection that idles and a second
#     connection while a stray is dropped: each is logged and dropped, the
#     destination keeps listening, then the real source migrates to it;
#  2. the same while the destination waits in postcopy-paused after a
#     post-copy break: recovery goes on - status says postcopy-paused and
#     how many vCPUs wait - and the real `migrate --resume` completes;
#  3. a fake destination answers RUNNING right after the state, without
#     READY (no GO was sent): the source refuses it, fails the migration
#     and its VM runs on.
. "$(dirname "$0")/lib.sh"
need_kvm
DIR=$(dirname "$0")

# stray KIND PORT: one connection that is not a source.
stray()
{
	python3 - "$1" "$2" <<'PY'
import os, socket, sys, time
kind, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
if kind == "garbage":
    s.sendall(os.urandom(4096))
elif kind == "idle":
    s.settimeout(30)
    t0 = time.monotonic()
    try:
        s.recv(1)
    except OSError:
        pass
    print("idle connection closed by the destination after %.1f s" % (time.monotonic() - t0))
s.close()
PY
}

# stray_pair PID PORT: a stray is being served when a second connects and
# the first sends garbage, both seen in one turn of the destination's loop
# (it is stopped meanwhile): the listener closes for the second while the
# first is dropped, and the destination must not listen anew before that
# close is done (libuv's uv__finish_close assertion, issue 13).
stray_pair()
{
	python3 - "$1" "$2" <<'PY'
import os, signal, socket, sys, time
pid, port = int(sys.argv[1]), int(sys.argv[2])
def sockets():
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n
before = sockets()
a = socket.create_connection(("127.0.0.1", port))
deadline = time.monotonic() + 10
while sockets() <= before:  # accepted: one socket more
    if time.monotonic() > deadline:
        sys.exit("the destination never accepted the first stray")
    time.sleep(0.01)
os.kill(pid, signal.SIGSTOP)
try:
    b = socket.create_connection(("127.0.0.1", port))  # the listener wakes
    a.sendall(os.urandom(64))  # then the first stray's socket
finally:
    os.kill(pid, signal.SIGCONT)
b.settimeout(10)
try:
    b.recv(1)  # the destination refuses it: EOF or a reset
except OSError:
    pass
a.close()
b.close()
PY
}

# strays NAME PORT STATE: scan, garbage, idle; NAME still waits in STATE.
strays()
{
	local name=$1 port=$2 state=$3 kind
	for kind in scan garbage idle pair; do
		if [[ $kind == pair ]]; then
			stray_pair "$dst" "$port" || fail "$name: $kind: $?"
		else
			stray "$kind" "$port" || fail "$name: $kind: cannot connect"
		fi
		wait_until 10 "$name: the $kind connection dropped" \
			'(($(grep -c "dropped" "$T/'"$name"'.err") >= ${n:-0} + 1)) || ! kill -0 '"$dst"
		kill -0 "$dst" 2>/dev/null || fail "$name exited on a $kind connection: $(cat "$T/$name.err")"
		n=$(grep -c "dropped" "$T/$name.err")
		[[ $(status_get "$T/$name.sock" .migration.state) == "$state" ]] ||
			fail "$name: $(status_get "$T/$name.sock" .migration.state) after a $kind connection"
	done
	n=0
	echo "ok: $name kept waiting in $state: $(grep dropped "$T/$name.err" | tr '\n' ' ')"
}

# 1. Strays before the first migration, then the real source.
port=$(free_port)
vmm_incoming b1 "tcp:127.0.0.1:$port" --mem 128M --cpus 2
dst=$VMM_PID
vmm_start a1 --mem 128M --cpus 2 --append "dirty --mib 16 --rate 50"
src=$VMM_PID
wait_until 30 "a1 running" '(($(status_get "$T/a1.sock" .heartbeats.count) >= 100))'
strays b1 "$port" listening
ctl migrate --api "$T/a1.sock" --to "tcp:127.0.0.1:$port" >"$T/m1.json" ||
	fail "1. migrate after the strays: $(cat "$T/m1.json")"
mig_check_completed a1 b1 "$src" "$dst" "$T/m1.json"
echo "ok: 1. the real source migrated after three strays ($MIG_BEATS heartbeats)"

# 2. Strays while post-copy is paused, then --resume.
dport=$(free_port)
pport=$(free_port)
vmm_incoming b2 "tcp:127.0.0.1:$dport" --mem 256M --cpus 2
dst=$VMM_PID
vmm_start a2 --mem 256M --cpus 2 --append "dirty --mib 64 --rate 100"
src=$VMM_PID
wait_until 30 "a2 dirty running" '(($(status_get "$T/a2.sock" .heartbeats.count) >= 300))'
python3 "$DIR/tcpproxy.py" "$pport" "$dport" --rate $((8 << 20)) >"$T/proxy.out" 2>&1 &
proxy=$!
VMM_PIDS+=("$proxy")
wait_until 10 "relay listening" 'grep -q ready "$T/proxy.out"'
timeout 120 "$VMMCTL" migrate --api "$T/a2.sock" --to "tcp:127.0.0.1:$pport" \
	--mode postcopy --verify >"$T/m2.json" 2>"$T/m2.err" &
mig=$!
wait_until 30 "pages arriving" '(($(status_get "$T/a2.sock" .migration.postcopy_pushed_pages) > 1000))'
kill -KILL "$proxy"
wait_until 30 "b2 paused" '[[ $(status_get "$T/b2.sock" .migration.state) == postcopy-paused ]]'
wait_until 30 "a2 paused" '[[ $(status_get "$T/a2.sock" .migration.state) == postcopy-paused ]]'
vmm_wait "$mig"
[[ $(status_get "$T/b2.sock" .state) == postcopy-paused ]] ||
	fail "2. b2's status says '$(status_get "$T/b2.sock" .state)' while post-copy is paused"
[[ $(status_get "$T/b2.sock" .waiting_vcpus) =~ ^[0-9]+$ ]] ||
	fail "2. b2's status has no waiting_vcpus count"
strays b2 "$dport" postcopy-paused
ctl migrate --api "$T/a2.sock" --resume --to "tcp:127.0.0.1:$dport" >"$T/res2.json" ||
	fail "2. --resume after the strays: $(cat "$T/res2.json")"
mig_check_completed a2 b2 "$src" "$dst" "$T/res2.json"
echo "ok: 2. --resume completed after three strays in postcopy-paused ($MIG_BEATS heartbeats)"

# 3. A fake destination says RUNNING without READY: no GO was sent.
fport=$(free_port)
python3 "$DIR/fakedest.py" "$fport" --script running-early >"$T/fake.out" 2>&1 &
VMM_PIDS+=("$!")
wait_until 10 "fake destination listening" 'grep -q ready "$T/fake.out"'
vmm_start a3 --mem 64M --cpus 1 --append "dirty --mib 8 --rate 10"
wait_until 30 "a3 running" '(($(status_get "$T/a3.sock" .heartbeats.count) >= 50))'
rc=0
timeout 60 "$VMMCTL" migrate --api "$T/a3.sock" --to "tcp:127.0.0.1:$fport" \
	>"$T/m3.json" 2>"$T/m3.err" || rc=$?
grep -q "sent RUNNING" "$T/fake.out" || fail "3. the fake destination never sent RUNNING"
((rc != 0)) || fail "3. the source reported $(jq -r .state "$T/m3.json") on a RUNNING before GO"
one_line "$T/m3.err" "RUNNING" "3. the source's error"
[[ $(status_get "$T/a3.sock" .state) == running ]] || fail "3. a3 is not running"
guest_verify "$T/a3.sock" "3. the source after a lying destination"
echo "ok: 3. RUNNING before GO refused: $(cat "$T/m3.err")"
