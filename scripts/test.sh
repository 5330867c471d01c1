#!/usr/bin/env bash
# The whole suite: installs what is missing, builds with warnings as errors, runs the unit and
# integration tests, then builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# everything once more. Any sanitizer report from any process (sluice, sluice-mock, unit tests)
# fails the run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/install-deps.sh" --test
if [ -f "$root/tests/integration/package-lock.json" ]; then
    # The integration tests drive sluice with the official OpenAI SDK (npm package "openai").
    (cd "$root/tests/integration" && npm ci --no-audit --no-fund --loglevel=error)
fi

run_suite() {
    local dir="$1"
    ctest --test-dir "$dir" -L unit --output-on-failure -j"$(nproc)"
    ctest --test-dir "$dir" -L integration --output-on-failure
}

echo "== build (warnings are errors)"
"$root/scripts/build.sh" build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON
echo "== tests"
run_suite build-ci

echo "== build (ASan + UBSan)"
"$root/scripts/build.sh" build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_WERROR=ON -DSLUICE_SANITIZE=ON
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
echo "== tests under sanitizers"
status=0
run_suite build-asan || status=$?
if compgen -G "$reports/*" >/dev/null; then
    echo "sanitizer reports:" >&2
    cat "$reports"/* >&2
    exit 1
fi
exit "$status"
