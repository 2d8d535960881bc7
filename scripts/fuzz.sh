#!/bin/sh
# Run every libFuzzer harness for a bounded time on its seed corpus.
# usage: fuzz.sh BUILD_DIR SECONDS [JOBS [PARALLEL]]
#   SECONDS per harness; JOBS > 1 runs each harness in libFuzzer's fork mode
#   with that many processes sharing its corpus; PARALLEL harnesses run at
#   once (default 1: one after the other). New inputs collect in
#   BUILD_DIR/corpus-run/<harness> (kept between runs), crashes in
#   BUILD_DIR/artifacts/.
set -eu
build=$1
secs=$2
jobs=${3:-1}
parallel=${4:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
par=""
[ "$jobs" -gt 1 ] && par="-fork=$jobs"

# One harness; its verdict goes to BUILD_DIR/<harness>.status (ok or failed).
run_one() {
	bin=$1
	name=$(basename "$bin")
	seeds="$root/tests/fuzz/corpus/$name"
	work="$build/corpus-run/$name"
	mkdir -p "$work" "$build/artifacts"
	if ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 $par \
		-artifact_prefix="$build/artifacts/$name-" "$work" "$seeds" \
		>"$build/$name.log" 2>&1; then
		echo ok >"$build/$name.status"
	else
		echo failed >"$build/$name.status"
	fi
}

# Report the harnesses of a finished batch; returns 1 if one failed.
report() {
	rc=0
	for name in "$@"; do
		if [ "$(cat "$build/$name.status" 2>/dev/null)" != ok ]; then
			echo "fuzz: $name FAILED; see $build/$name.log and $build/artifacts/" >&2
			tail -n 40 "$build/$name.log" >&2
			rc=1
		else
			runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$name.log" | tail -n 1)
			[ -n "$runs" ] || runs=$(grep -Eo '^#[0-9]+' "$build/$name.log" | tail -n 1 | tr -d '#')
			echo "fuzz: $name ok, ${runs:-?} inputs run"
		fi
	done
	return $rc
}

status=0
batch=""
n=0
for bin in "$build"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	rm -f "$build/$name.status"
	echo "fuzz: $name for ${secs}s${par:+ ($jobs processes)}"
	run_one "$bin" &
	batch="$batch $name"
	n=$((n + 1))
	if [ "$n" -ge "$parallel" ]; then
		wait
		report $batch || status=1
		batch=""
		n=0
	fi
done
wait
[ -z "$batch" ] || report $batch || status=1
exit $status
