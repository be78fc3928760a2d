#!/usr/bin/env bash
# Run a benchmark command with this machine's senet training runs paused, then resume them.
#   benchmarks/quiet.sh .venv/bin/senet bench --suite settings --keep-freed-memory --out ...
# The long trainings of results/ (senet train / senet ablate) share the 2 cores with any benchmark
# run beside them; SIGSTOP freezes them for the benchmark's duration (their wall-clock epoch time
# grows, nothing else changes) and SIGCONT resumes them, also when the command fails or is
# interrupted. PATTERN (an extended regex over full command lines, default: the senet entry point
# running train or ablate) selects the processes to pause; this script itself is never paused.
set -uo pipefail
pattern="${PATTERN:-bin/senet (train|ablate)}"
pids=()
for pid in $(pgrep -f -- "$pattern"); do
  [ "$pid" = "$$" ] || [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "$$" ] || pids+=("$pid")
done
resume() { [ ${#pids[@]} -eq 0 ] || kill -CONT "${pids[@]}" 2>/dev/null || true; }
trap resume EXIT INT TERM
if [ ${#pids[@]} -gt 0 ]; then
  echo "quiet.sh: pausing ${#pids[@]} process(es) matching '$pattern': ${pids[*]}" >&2
  kill -STOP "${pids[@]}"
  sleep 3
fi
"$@"
