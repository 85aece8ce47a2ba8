#!/usr/bin/env bash
# The apifetch benchmark: builds apifetch and the static test server, sets up the Python
# baseline in a throwaway virtualenv, and prints a Markdown table of the results.
#
#   bench/run.sh                  # 10k and 200k records, at 100 and 1000 per page (a few minutes)
#   bench/run.sh --large          # adds 2M records (apifetch and curl; the baseline only with --large-baseline)
#   bench/run.sh --runs 3         # fewer repetitions; any other flag goes to bench/measure.py
#
# Needs: cargo, curl, python3 (with venv), GNU time (/usr/bin/time). Everything runs on
# 127.0.0.1; the only download is `pip install requests` into the virtualenv.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

sizes="10000,200000"
baseline_max=200000
args=()
while (($#)); do
    case "$1" in
        --large) sizes="10000,200000,2000000" ;;
        --large-baseline) baseline_max=2000000 ;;
        *) args+=("$1") ;;
    esac
    shift
done

for tool in cargo curl python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done

echo "bench: building apifetch and the static server (release)" >&2
cargo build --release --locked --quiet
cargo build --release --quiet --manifest-path bench/server/Cargo.toml

venv="$(mktemp -d "${TMPDIR:-/tmp}/apifetch-bench-venv.XXXXXX")"
trap 'rm -rf "$venv"' EXIT
echo "bench: installing the Python baseline's requests into a throwaway virtualenv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check requests

python3 bench/measure.py \
    --apifetch target/release/apifetch \
    --server bench/server/target/release/apifetch-bench-server \
    --python "$venv/bin/python" \
    --sizes "$sizes" \
    --baseline-max "$baseline_max" \
    ${args[@]+"${args[@]}"}
