#!/usr/bin/env bash
# npm run test:valgrind [-- name-filter]: the native tests of the normal build
# (build/Release/native_tests, from npm ci or npm run build:native) under
# valgrind's memcheck, once per backend. Fails on any memcheck error, a
# definite leak, or a test failure other than the known ones below.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=build/Release/native_tests
[ -x "$binary" ] || { echo "test-valgrind: $binary is missing; run npm run build:native" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "test-valgrind: no valgrind (apt-get install valgrind)" >&2; exit 1; }

# Valgrind emulates RLIMIT_NOFILE instead of setting it: an accept past the
# emulated limit succeeds in the kernel and valgrind then closes the socket,
# and io_uring's accepts bypass the check. These two tests lower the limit to
# run out of descriptors, so they cannot pass under valgrind.
valgrind_cannot="loop_accept_exhaustion_backs_off_then_serves_the_waiting_clients
  loop_accept_exhaustion_with_clients_arriving_does_not_spin"

backends=$(node -p "require('./build/Release/native_reactor.node').backends.join(' ')")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
for backend in $backends; do
  echo "== test-valgrind: native tests, backend $backend"
  # 99 tells memcheck's findings apart from failed tests (1) and the tests'
  # own 50 s watchdog (2). io_uring: valgrind >= 3.16 knows its system calls.
  status=0
  NATIVE_REACTOR_BACKEND=$backend timeout 600 valgrind -q --error-exitcode=99 \
    --leak-check=full --errors-for-leak-kinds=definite "$binary" "$@" 2>&1 | tee "$log" || status=$?
  case $status in
    0) ;;
    1)
      grep -q '^[0-9]* passed, [0-9]* failed$' "$log" || { failed+=("$backend: no summary"); continue; }
      for name in $(sed -n 's/^FAIL  \([^ ]*\) .*/\1/p' "$log"); do
        case " $(echo $valgrind_cannot) " in
          *" $name "*) echo "test-valgrind: expected under valgrind (emulated fd limit): $name" ;;
          *) failed+=("$backend: $name") ;;
        esac
      done
      ;;
    99) failed+=("$backend: memcheck errors (above)") ;;
    *) failed+=("$backend: exit status $status") ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  printf 'test-valgrind: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "test-valgrind: clean (backends: $backends)"
