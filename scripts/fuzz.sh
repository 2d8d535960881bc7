#!/bin/sh
# Run every libFuzzer harness for a bounded time on its seed corpus.
# usage: fuzz.sh BUILD_DIR SECONDS [JOBS]
#   SECONDS per harness; JOBS > 1 runs each harness in libFuzzer's fork mode
#   with that many processes sharing its corpus (the harnesses still run one
#   after the other). New inputs collect in BUILD_DIR/corpus-run/<harness>
#   (kept between runs), crashes in BUILD_DIR/artifacts/.
set -eu
build=$1
secs=$2
jobs=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
par=""
[ "$jobs" -gt 1 ] && par="-fork=$jobs"
for bin in "$build"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	seeds="$root/tests/fuzz/corpus/$name"
	work="$build/corpus-run/$name"
	mkdir -p "$work" "$build/artifacts"
	echo "fuzz: $name for ${secs}s${par:+ ($jobs processes)}"
	if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 $par \
		-artifact_prefix="$build/artifacts/$name-" "$work" "$seeds" \
		>"$build/$name.log" 2>&1; then
		echo "fuzz: $name FAILED; see $build/$name.log and $build/artifacts/" >&2
		tail -n 40 "$build/$name.log" >&2
		status=1
	else
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$name.log" | tail -n 1)
		[ -n "$runs" ] || runs=$(grep -Eo '^#[0-9]+' "$build/$name.log" | tail -n 1 | tr -d '#')
		echo "fuzz: $name ok, ${runs:-?} inputs run"
	fi
done
exit $status
