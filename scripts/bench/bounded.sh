#!/usr/bin/env bash
# bounded.sh SECONDS CMD [ARG...]: runs CMD for at most SECONDS, then stops
# it and everything it started; `make bench` runs each step under it.
#
# Why not `timeout`: `timeout --foreground` signals only CMD, and a bench
# script's bash runs its cleanup trap (which stops the servers it started)
# only once its foreground child (a 30 s load run) has ended, so the KILL
# that follows 10 s later left the servers running, orphaned, under the next
# step. Plain `timeout` signals CMD's whole process group, but moves itself
# out of the terminal's, so Ctrl-C never reached the step.
#
# Here CMD runs in a process group of its own (setsid), and this script
# stays in the terminal's: at the limit, or on Ctrl-C (INT), TERM or HUP,
# the whole group gets the signal (TERM at the limit) at once: servers
# drain and exit, the script's cleanup runs as soon as its client has
# gone. What is still there 10 s later is killed. Exit status: CMD's; 124
# when the limit stopped it (as `timeout`); 128 + the signal's number when
# a signal did.
set -uo pipefail

if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ || $1 -eq 0 ]]; then
  echo "usage: bounded.sh SECONDS CMD [ARG...] (SECONDS a whole number > 0)" >&2
  exit 2
fi
limit=$1
shift

pid=""
started=""
stopped_by=""

# group_running: whether a process of CMD's group is still running. An
# exited one whose parent has not reaped it yet (a zombie: its parent died
# too, and init reaps when it gets to it) holds nothing and does not count.
group_running() {
  local stat line rest
  for stat in /proc/[0-9]*/stat; do
    { read -r line <"$stat"; } 2>/dev/null || continue  # it has exited
    rest=${line##*) }  # after the command's name, which may hold spaces
    read -r state _ pgrp _ <<<"$rest"
    [[ $pgrp == "$pid" && $state != Z ]] && return 0
  done
  return 1
}

# group_ready: CMD leads a process group of its own (setsid has run: until
# then a signal to the group reaches no one), or has already exited.
group_ready() {
  local line rest
  { read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 0
  rest=${line##*) }
  read -r state _ pgrp _ <<<"$rest"
  [[ $pgrp == "$pid" || $state == Z ]]
}

# stop SIGNAL: SIGNAL to CMD's group, then KILL to what remains after 10 s.
stop() {
  kill -"$1" -- -"$pid" 2>/dev/null || return 0
  local i
  for ((i = 0; i < 100; i++)); do
    group_running || return 0
    sleep 0.1
  done
  echo "bounded.sh: still running 10 s after $1; killing it" >&2
  kill -KILL -- -"$pid" 2>/dev/null || true
}

# A signal before CMD's group exists is remembered, and passed on once it
# does (a review's repro: a TERM 6 ms after the start reached no one, and
# disabled the limit too).
# shellcheck disable=SC2317  # called by the traps below
on_signal() {
  stopped_by=$1
  [[ -z $started ]] || stop "$1"
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# A background job of a script starts with INT ignored, and a bash script
# cannot trap a signal ignored at its start: env gives CMD INT's default
# back, so that a step's Ctrl-C cleanup runs. setsid makes no further
# process when its caller leads no process group (a script's background
# job does not), so $pid leads the new group and its number is the group's.
env --default-signal=INT setsid "$@" &
pid=$!
for ((i = 0; i < 1000; i++)); do  # a few ms; at most 10 s
  group_ready && break
  sleep 0.01
done
started=1
[[ -z $stopped_by ]] || stop "$stopped_by"

# The clock: a background sleep that ends at the limit. `wait -n` returns
# when CMD or the clock ends, or when a signal's trap has run.
sleep "$limit" &
clock=$!
status=""
while [[ -z $status ]]; do
  # Gone already (stopped at the start or by a trap, or dead of a signal
  # while the ready loop ran its sleeps): `wait -n` would not return for a
  # job bash has already reported, only at the clock's end; `wait PID`
  # still gives its status (a review's repro: a step that killed itself at
  # once was reported as running past its limit).
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    status=$?
    break
  fi
  ended=""
  wait -n -p ended "$pid" "$clock" 2>/dev/null
  rc=$?
  if [[ ${ended:-} == "$pid" ]]; then
    status=$rc
  elif [[ ${ended:-} == "$clock" && -z $stopped_by ]]; then
    echo "bounded.sh: $* ran past ${limit}s; stopping it" >&2
    stopped_by=limit
    stop TERM
  elif [[ -n $stopped_by ]] && ! kill -0 "$pid" 2>/dev/null; then
    status=$rc  # stopped, and reaped while the trap ran
  fi
done
kill "$clock" 2>/dev/null
# Whatever CMD left behind in its group (a server a script started and did
# not stop) goes too.
kill -KILL -- -"$pid" 2>/dev/null || true
case $stopped_by in
  limit) exit 124 ;;
  INT) exit 130 ;;
  TERM) exit 143 ;;
  HUP) exit 129 ;;
esac
exit "$status"
