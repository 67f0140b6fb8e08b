# shellcheck shell=bash
# scripts/ports.sh - pick a TCP port for a destination VMM to listen on.
# Sourced by tests/integration/lib.sh and the bench scripts.
#
# port_pick [CMD...]: print a port of 127.0.0.1 that nothing listens on now,
# probing through CMD when given (e.g. `ip netns exec NS`: that namespace's
# loopback); return 1 when 50 random tries found none. The ports come from
# below Linux's ephemeral range (32768-60999 by default): a port that an
# outgoing connection holds there takes no connection, so it would look
# free, yet a listener could not bind it.
port_pick()
{
	local p
	for p in $(shuf -i 20000-32767 -n 50); do
		if ! "$@" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$p" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
