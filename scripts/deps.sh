#!/bin/sh
# Install the Debian packages espatd's build and tests use, if missing.
# As root: apt-get install (after apt-get update when the lists are empty).
# Otherwise: print the exact command and fail.
# usage: deps.sh [SET...]
#   without SET: what building, `make run` and most suites need (make deps);
#   valgrind: valgrind as well (make valgrind and make valgrind-smoke, which
#   `make test` runs).
set -eu

PKGS="build-essential cmake pkg-config libcmocka-dev python3 python3-pytest python3-pytest-xdist python3-serial clang libclang-rt-14-dev libc-ares-dev dnsmasq-base libssl-dev libcurl4-openssl-dev socat chrony"

for set in "$@"; do
	case $set in
	valgrind) PKGS="$PKGS valgrind" ;;
	*) echo "deps.sh: unknown package set '$set'" >&2; exit 2 ;;
	esac
done

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "espatd needs these Debian packages:$missing" >&2
	echo "Install them with:" >&2
	echo "  sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
	echo "deps: package lists are empty; running apt-get update" >&2
	apt-get update
fi
echo "deps: installing$missing" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
