#!/usr/bin/env bash
# scripts/bench/bounded.sh, which bounds each step of `make bench`: a step
# stopped at its limit or by Ctrl-C leaves no process behind (a bench
# script's servers), its own cleanup runs, and the exit status says why it
# ended. The "server" here is a sleep renamed to a marker unique to this
# run, found afterwards in /proc.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bounded=$root/scripts/bench/bounded.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
marker="bounded-test-$$-server"

# A bench step: starts a "server" in the background, cleans it up on
# TERM or INT (as scripts/bench/lib.sh does: the trap runs only once the
# foreground command has ended), and runs a long foreground command.
# $1: what the server does with TERM ("" to die of it, "ignore" to ignore
# it, so that only KILL stops it).
step() {
  cat >"$tmp/step.sh" <<SCRIPT
#!/usr/bin/env bash
bash -c '[[ "$1" == ignore ]] && trap "" TERM; exec -a $marker sleep 300' &
server=\$!
trap 'echo cleanup >"$tmp/cleanup"; kill -TERM \$server; exit 143' TERM INT
: >"$tmp/ready"
sleep 300
SCRIPT
  chmod +x "$tmp/step.sh"
  rm -f "$tmp/cleanup" "$tmp/ready"
}

# Whether a process with the marker as its name is running.
server_left() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    { [[ $(tr '\0' ' ' <"$f") == "$marker "* ]]; } 2>/dev/null && return 0
  done
  return 1
}

expect() { # DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then
    echo "ok   $what"
  else
    echo "FAIL $what (rc=$RC; stderr: $(cat "$tmp/err"))" >&2
    failures=$((failures + 1))
  fi
}

# The command's own status passes through.
RC=0
"$bounded" 5 bash -c 'exit 3' 2>"$tmp/err" || RC=$?
expect "a command's exit status is bounded.sh's" test "$RC" -eq 3

# A step that dies of a signal at once: its status, at once (a review's
# repro: reported as past its limit, after it).
start=$(date +%s)
RC=0
"$bounded" 30 bash -c 'kill -KILL $$' 2>"$tmp/err" || RC=$?
expect "a step killed at its start ends with 137" test "$RC" -eq 137
expect "and at once" test $(($(date +%s) - start)) -lt 15

# At the limit: TERM to the step and everything it started, at once.
step ""
RC=0
"$bounded" 1 "$tmp/step.sh" 2>"$tmp/err" || RC=$?
expect "the limit ends the step with 124" test "$RC" -eq 124
expect "the step's cleanup ran" test -e "$tmp/cleanup"
expect "no server is left behind" eval '! server_left'
expect "the limit is named" grep -q "ran past 1s" "$tmp/err"

# A server that ignores TERM is killed 10 s later.
step ignore
RC=0
"$bounded" 1 "$tmp/step.sh" 2>"$tmp/err" || RC=$?
expect "a server that ignores TERM ends too" eval '! server_left'
expect "and that is said" grep -q "still running 10 s after TERM" "$tmp/err"
expect "the limit still ends the step with 124" test "$RC" -eq 124

# Ctrl-C: the terminal sends INT to bounded.sh (a background job of a
# script would have INT ignored: env --default-signal undoes that).
step ""
env --default-signal=INT "$bounded" 60 "$tmp/step.sh" 2>"$tmp/err" &
pid=$!
# Until the step has set its trap (and started its server).
for ((i = 0; i < 100; i++)); do
  [[ -e $tmp/ready ]] && break
  sleep 0.1
done
kill -INT "$pid"
RC=0
wait "$pid" || RC=$?
expect "Ctrl-C ends the step with 130" test "$RC" -eq 130
expect "Ctrl-C runs the step's cleanup" test -e "$tmp/cleanup"
expect "Ctrl-C leaves no server" eval '! server_left'

# TERM as the step starts (before its process group exists, or just after):
# it is passed on, not lost (a review's repro: 6 ms after the start, the
# step ran to its end, the limit disabled). Whatever the moment, the step
# ends at once and leaves nothing.
for delay in 0 0.002 0.005 0.01 0.03; do
  step ""
  start=$(date +%s)
  "$bounded" 60 "$tmp/step.sh" 2>"$tmp/err" &
  pid=$!
  sleep "$delay"
  kill -TERM "$pid"
  RC=0
  wait "$pid" || RC=$?
  expect "TERM ${delay}s after the start ends the step with 143" test "$RC" -eq 143
  expect "TERM ${delay}s after the start ends it within 15 s" \
    test $(($(date +%s) - start)) -lt 15
  expect "TERM ${delay}s after the start leaves no server" eval '! server_left'
done

# Usage errors.
RC=0
"$bounded" 0 true 2>"$tmp/err" || RC=$?
expect "a limit of 0 is a usage error" test "$RC" -eq 2

if ((failures)); then
  echo "$failures failed" >&2
  exit 1
fi
echo "all passed"
