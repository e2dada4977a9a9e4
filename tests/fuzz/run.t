#!/usr/bin/env bash
# TAP: replays the saved reproducers of every libFuzzer harness, then fuzzes
# each one for a bounded time on a copy of its seed corpus (the repository
# is never written to).
#
#   tests/fuzz/corpus/<name>/        seeds of build/fuzz/fuzz_<name>
#   tests/fuzz/<name>.dict           its libFuzzer dictionary, if any
#   tests/fuzz/regressions/<name>/   inputs that once crashed it; each must
#                                    now run clean.  Those named in
#                                    tests/fuzz/regressions/OPEN (one path
#                                    per line) are known bugs not yet fixed:
#                                    reported as TODO, so they do not fail.
#
# Environment: SU_BUILD (default build), SU_FUZZ_TIME seconds per harness
# (default 20).  A crash, leak, UB report or timeout is `not ok`, with the
# reproducer's path and the sanitizer's summary shown as diagnostics.
set -u
cd "$(dirname "$0")/../.." || exit 1

build=${SU_BUILD:-build}
secs=${SU_FUZZ_TIME:-20}
open_list=tests/fuzz/regressions/OPEN
shopt -s nullglob
fuzzers=("$build"/fuzz/fuzz_*)
if [ ${#fuzzers[@]} -eq 0 ]; then
	echo "1..0 # SKIP no fuzzers in $build/fuzz (make fuzz)"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/su-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# ASan's leak checker and UBSan must make the run fail, not just print.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

n=0
failed=0

is_open() {
	[ -f "$open_list" ] && grep -qxF "$1" "$open_list"
}

show_log() {
	grep -E '^fuzz: |ERROR|SUMMARY|runtime error|Test unit written' "$1" | tail -n 12 | sed 's/^/#   /'
}

report() { # status name log [directive]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2${4:+ # $4}"
		return
	fi
	echo "not ok $n - $2${4:+ # $4}"
	show_log "$3"
	[ -n "${4:-}" ] || failed=$((failed + 1))
}

# The plan: one replay per saved reproducer, one fuzzing run per harness.
total=${#fuzzers[@]}
for bin in "${fuzzers[@]}"; do
	name=${bin##*/fuzz_}
	for r in tests/fuzz/regressions/"$name"/*; do
		total=$((total + 1))
	done
done
echo "1..$total"

for bin in "${fuzzers[@]}"; do
	name=${bin##*/fuzz_}
	for r in tests/fuzz/regressions/"$name"/*; do
		log="$work/replay.log"
		timeout 60 "$bin" -runs=1 -timeout=5 -rss_limit_mb=2048 "$r" >"$log" 2>&1
		st=$?
		directive=
		is_open "$r" && directive="TODO open bug, listed in $open_list"
		report "$st" "fuzz_$name replays $r" "$log" "$directive"
	done

	corpus="$work/$name/corpus"
	art="$work/$name/artifacts/"
	log="$work/$name/log"
	mkdir -p "$corpus" "$art"
	if [ -d "tests/fuzz/corpus/$name" ]; then
		cp -R "tests/fuzz/corpus/$name/." "$corpus/"
	fi
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	# A fixed seed by default, so a CI run explores the same inputs as the
	# last green one (SU_FUZZ_SEED=0: a random seed, for longer hunts).
	timeout $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
		-seed="${SU_FUZZ_SEED:-1}" -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" "$corpus" >"$log" 2>&1
	st=$?
	report "$st" "fuzz_$name (${secs}s, $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" |
		grep -Eo '[0-9]+$' | tail -n 1) runs)" "$log"
	if [ "$st" -ne 0 ]; then
		for crash in "$art"*; do
			echo "#   reproducer: $crash ($(stat -c %s "$crash") bytes); first bytes:"
			head -c 512 "$crash" | od -c | head -n 12 | sed 's/^/#     /'
			keep="${TMPDIR:-/tmp}/su-fuzz-$name-${crash##*/}"
			cp "$crash" "$keep" && echo "#   kept as $keep (save it under tests/fuzz/regressions/$name/)"
		done
	fi
done

[ "$failed" -eq 0 ]
