#!/usr/bin/env bash
# deploy/ceph/stop.sh - stop exactly the daemons that deploy/ceph/start.sh started (radosgw,
# ceph-osd, ceph-mon), found through the pid files in $S3_DATA_DIR/run.
# A pid is only signalled if /proc/<pid>/comm still names the expected program.
#   S3_DATA_DIR   same as for start.sh (default /tmp/kluis-ceph)
#   S3_WIPE=1     also delete the data dir afterwards
set -uo pipefail
S3_DATA_DIR="${S3_DATA_DIR:-/tmp/kluis-ceph}"
RUN="$S3_DATA_DIR/run"

stop_one() { # pidfile expected-comm
  local pf=$1 comm=$2 pid
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]; then
    echo "[kluis-ceph] stopping $comm (pid $pid)" >&2
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[kluis-ceph] $comm (pid $pid) still alive, SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  fi
  rm -f "$pf"
}

# gateway first, then the OSD (memstore saves its state on a clean stop), then the monitor
stop_one "$RUN/rgw.pid" radosgw
stop_one "$RUN/osd.0.pid" ceph-osd
stop_one "$RUN/mon.a.pid" ceph-mon

if [ "${S3_WIPE:-0}" = 1 ]; then
  rm -rf "$S3_DATA_DIR"
  echo "[kluis-ceph] wiped $S3_DATA_DIR" >&2
fi
