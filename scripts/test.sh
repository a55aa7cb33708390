#!/usr/bin/env bash
# Every test: the Python compiler's (pytest) and the Deno service's (deno test).
# Ends with one line "N passed, N failed" that sums both runners.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp -d)
status=0

OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} .venv/bin/python -m pytest -q -p no:cacheprovider compiler/tests 2>&1 | tee "$log/py.txt"
py_rc=${PIPESTATUS[0]}
[ "$py_rc" = 0 ] || status=1

deno_rc=0
if [ -f deno.json ]; then
  scripts/deno task test 2>&1 | tee "$log/deno.txt"
  deno_rc=${PIPESTATUS[0]}
  [ "$deno_rc" = 0 ] || status=1
fi

count() { # count FILE WORD: the last "N WORD" on a pytest summary line or in deno's "| N WORD |"
  grep -oE "[0-9]+ $2" "$1" 2>/dev/null | tail -1 | cut -d' ' -f1
}
py_pass=$(count "$log/py.txt" passed); py_fail=$(count "$log/py.txt" failed)
py_err=$(grep -oE "[0-9]+ errors?" "$log/py.txt" | tail -1 | cut -d' ' -f1)
dn_pass=$(count "$log/deno.txt" passed); dn_fail=$(count "$log/deno.txt" failed)
passed=$(( ${py_pass:-0} + ${dn_pass:-0} ))
failed=$(( ${py_fail:-0} + ${py_err:-0} + ${dn_fail:-0} ))
# A runner that crashed before its summary still counts as a failure.
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
rm -rf "$log"
echo "$passed passed, $failed failed"
exit $status
