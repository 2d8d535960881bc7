#!/bin/sh
# Run every libFuzzer harness for a bounded time on its seed corpus.
# usage: fuzz.sh BUILD_DIR SECONDS
set -eu
build=$1
secs=$2
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	seeds="$root/tests/fuzz/corpus/$name"
	work="$build/corpus-run/$name"
	mkdir -p "$work" "$build/artifacts"
	echo "fuzz: $name for ${secs}s"
	if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=0 \
		-artifact_prefix="$build/artifacts/$name-" "$work" "$seeds" \
		>"$build/$name.log" 2>&1; then
		echo "fuzz: $name FAILED; see $build/$name.log and $build/artifacts/" >&2
		tail -n 40 "$build/$name.log" >&2
		status=1
	else
		grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "$build/$name.log" | tail -n 1 || true
	fi
done
exit $status
