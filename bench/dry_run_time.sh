#!/usr/bin/env bash
# Wall and CPU time of `snakemake -n` on the laptop config (issue target: under 5 s). Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
for i in 1 2 3; do
  /usr/bin/time -f "snakemake -n: %e s wall, %U+%S s CPU" .venv/bin/python -m snakemake --profile profiles/default -n --quiet >/dev/null
done
