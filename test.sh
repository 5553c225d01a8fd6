#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite:
# a virtualenv with musicdb and its test extra (pytest, the duckdb shell, selenium), and
# Debian's ffmpeg (m4a/AAC fallback tests), chromium and chromium-driver (the headless-browser
# tests) when they are missing, apt-get is available and we may use it.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null; } \
    || echo "test.sh: could not install ${missing[*]}" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# Compile numba's kernels (musicdb's and librosa's) into its disk cache once, in one process:
# test workers that all compiled them at the same moment on a fresh machine left a cache file
# that crashed every later load (SIGSEGV in librosa's peak_pick). The forkserver of a real
# ingest does the same (musicdb.workers.preload).
.venv/bin/python -c "import musicdb.workers.preload"

set +e
# On every core; a module whose tests share a module-scoped fixture stays on one worker
# (tests/conftest.py marks it), so the fixture is built once. `bash test.sh -n 0` runs serially.
.venv/bin/python -m pytest -q -n auto --dist loadgroup "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; an empty suite is a failure" >&2
  exit 1
fi
exit "$code"
