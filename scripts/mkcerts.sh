#!/usr/bin/env bash
# scripts/mkcerts.sh - certificates for migration over TLS (--tls-dir), for
# tests and first use.
#
#   mkcerts.sh DIR [--hosts NAME,...] [--client NAME] [--ca CADIR] [--days N]
#
# Writes, in DIR (created when missing):
#   ca.pem       the CA certificate both ends trust (copied from CADIR/ when
#                --ca is given, else a new self-signed CA, EC P-256)
#   ca-key.pem   the CA's key (0600; only with a new CA - keep it off the
#                hosts in a real deployment)
#   cert.pem     this host's certificate, signed by the CA: its subject CN
#                is the --client NAME (the identity --tls-authz matches;
#                default the first host name) and its subjectAltNames are
#                the --hosts names, DNS or IP as each looks (default
#                localhost,127.0.0.1). Extended key usage serverAuth and
#                clientAuth, so one directory serves a destination and a
#                source alike, as Cloud Hypervisor's tls_dir.
#   key.pem      its key (0600)
# A second host of the same cluster: mkcerts.sh DIR2 --ca DIR --hosts ...
# Needs only the openssl command line tool.
set -euo pipefail

usage()
{
	echo "usage: $0 DIR [--hosts NAME,...] [--client NAME] [--ca CADIR] [--days N]" >&2
	exit 2
}

[[ $# -ge 1 && $1 != -* ]] || usage
dir=$1
shift
hosts=localhost,127.0.0.1
client=''
cadir=''
days=825
while [[ $# -gt 0 ]]; do
	[[ $# -ge 2 ]] || usage
	case $1 in
	--hosts) hosts=$2 ;;
	--client) client=$2 ;;
	--ca) cadir=$2 ;;
	--days) days=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[[ $days =~ ^[0-9]+$ && $days -gt 0 ]] || {
	echo "mkcerts: --days wants a positive number, not '$days'" >&2
	exit 2
}

# "DNS:a,IP:b" from "a,b": a name is an IP when it parses as IPv4 or has a ':'.
san_list()
{
	local out='' h kind
	local -a names
	IFS=, read -r -a names <<<"$1"
	for h in "${names[@]}"; do
		[[ -n $h ]] || continue
		kind=DNS
		if [[ $h =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $h == *:* ]]; then
			kind=IP
		fi
		out+="${out:+,}$kind:$h"
	done
	[[ -n $out ]] || {
		echo "mkcerts: --hosts names no host" >&2
		exit 2
	}
	echo "$out"
}

sans=$(san_list "$hosts")
[[ -n $client ]] || client=${hosts%%,*}
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n $cadir ]]; then
	for f in ca.pem ca-key.pem; do
		[[ -r $cadir/$f ]] || {
			echo "mkcerts: $cadir/$f: missing or unreadable" >&2
			exit 1
		}
	done
	[[ $cadir -ef $dir ]] || cp "$cadir/ca.pem" "$dir/ca.pem"
	cakey=$cadir/ca-key.pem
else
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
		-days "$days" \
		-subj "/CN=vmm migration CA $(hostname -s) $(openssl rand -hex 4)" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/log" || {
		cat "$tmp/log" >&2
		exit 1
	}
	cakey=$dir/ca-key.pem
fi

cat >"$tmp/ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$sans
EOF
{
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/key.pem" -out "$tmp/req.pem" -subj "/CN=$client" &&
		openssl x509 -req -in "$tmp/req.pem" -CA "$dir/ca.pem" \
			-CAkey "$cakey" -set_serial "0x$(openssl rand -hex 16)" \
			-days "$days" -extfile "$tmp/ext" -out "$dir/cert.pem"
} 2>"$tmp/log" || {
	cat "$tmp/log" >&2
	exit 1
}
chmod 0644 "$dir/ca.pem" "$dir/cert.pem"
echo "mkcerts: $dir: CN=$client, $sans"
