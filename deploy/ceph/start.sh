#!/usr/bin/env bash
# deploy/ceph/start.sh - Kluis' own single-node Ceph (1 mon, 1 osd, no mgr) plus a RADOS
# Gateway (radosgw, the Ceph S3 server) on 127.0.0.1, for `make test`, benchmarks and local
# development. Adapted from research/s3/start-s3.sh (measured there); owned by Kluis.
#
# What this adds to the research script: Kluis defaults (data dir /tmp/kluis-ceph, its own
# ports and keys, so it never collides with another cluster on the machine), and the bucket
# Kluis needs: S3_BUCKET is created with Object Lock (which also enables versioning) using the
# minio SDK of S3_PYTHON (the project venv). Packages stay under COMPLIANCE retention, so this
# cluster is for tests only: wipe it with `S3_WIPE=1 deploy/ceph/stop.sh`.
#
# Idempotent: if the daemons started by a previous run are up and the gateway
# answers, it only prints the endpoint. If the data dir holds a finished
# bluestore bootstrap whose daemons are down, they are restarted from it (data
# kept). A memstore cluster whose OSD is down has lost its data and is
# re-created, as is a missing or half-made data dir.
#
# Environment (all optional):
#   S3_PORT            gateway port on 127.0.0.1                 (default 7481)
#   S3_DATA_DIR        all cluster state, logs, pid files        (default /tmp/kluis-ceph)
#   S3_ACCESS_KEY      S3 access key of the test user            (default kluis-test-access)
#   S3_SECRET_KEY      S3 secret key of the test user            (default kluis-test-secret-0123456789)
#   S3_USER            RGW user id                               (default kluis)
#   S3_BUCKET          bucket with Object Lock + versioning      (default kluis-test; "" = none)
#                      and its unversioned "<bucket>-guard" for conditional creates
#   S3_PYTHON          python with the minio SDK, for the bucket (default python3)
#   CEPH_MON_PORT      monitor msgr2 port (v1 port = +1)         (default 3310 -> v1 3311)
#   CEPH_OBJECTSTORE   bluestore | memstore | auto               (default auto: bluestore on a
#                      sparse file, memstore if the data dir is on tmpfs, where O_DIRECT fails)
#   CEPH_STORE_SIZE_MB memstore cap / bluestore file size in MB  (default 4096)
#   S3_SKIP_APT=1      do not run apt-get even if binaries are missing
#   S3_START_TIMEOUT   seconds to wait for the endpoint          (default 180)
#
# Output: the last line on stdout is the endpoint URL, e.g. http://127.0.0.1:7481
# Stop with deploy/ceph/stop.sh (same environment).
set -euo pipefail

S3_PORT="${S3_PORT:-7481}"
S3_DATA_DIR="${S3_DATA_DIR:-/tmp/kluis-ceph}"
S3_ACCESS_KEY="${S3_ACCESS_KEY:-kluis-test-access}"
S3_SECRET_KEY="${S3_SECRET_KEY:-kluis-test-secret-0123456789}"
S3_USER="${S3_USER:-kluis}"
S3_BUCKET="${S3_BUCKET-kluis-test}"
S3_PYTHON="${S3_PYTHON:-python3}"
CEPH_MON_PORT="${CEPH_MON_PORT:-3310}"
CEPH_OBJECTSTORE="${CEPH_OBJECTSTORE:-auto}"
CEPH_STORE_SIZE_MB="${CEPH_STORE_SIZE_MB:-4096}"
S3_START_TIMEOUT="${S3_START_TIMEOUT:-180}"

if [ "$CEPH_OBJECTSTORE" = auto ]; then
  mkdir -p "$S3_DATA_DIR"
  if [ "$(stat -f -c %T "$S3_DATA_DIR")" = tmpfs ]; then CEPH_OBJECTSTORE=memstore; else CEPH_OBJECTSTORE=bluestore; fi
fi
ENDPOINT="http://127.0.0.1:${S3_PORT}"
D="$S3_DATA_DIR"
CONF="$D/ceph.conf"
RUN="$D/run"
CEPH=(ceph --cluster ceph -c "$CONF" --connect-timeout 10)

T0=$SECONDS
log() { echo "[kluis-ceph] +$((SECONDS - T0))s $*" >&2; }
die() { echo "[kluis-ceph] ERROR: $*" >&2; exit 1; }

pid_alive() { # pidfile
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

http_ready() {
  # Any HTTP answer from the gateway counts (anonymous GET / -> 200 ListAllMyBuckets).
  python3 - "$ENDPOINT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2)
except urllib.error.HTTPError:
    pass
EOF
}

wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { log "timeout waiting for $what"; return 1; }
    sleep 0.5
  done
}

ensure_bucket() {
  [ -n "$S3_BUCKET" ] || return 0
  "$S3_PYTHON" - "$ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_BUCKET" <<'PY'
import sys, urllib.parse
from minio import Minio
endpoint, access, secret, bucket = sys.argv[1:5]
u = urllib.parse.urlparse(endpoint)
c = Minio(u.netloc, access_key=access, secret_key=secret, secure=u.scheme == "https")
if not c.bucket_exists(bucket):
    c.make_bucket(bucket, object_lock=True)  # Object Lock implies versioning
if c.get_bucket_versioning(bucket).status != "Enabled":
    sys.exit(f"bucket {bucket} exists without versioning/object lock")
c.get_object_lock_config(bucket)  # raises if the bucket has no Object Lock
# A writer killed mid-upload leaves an incomplete multipart upload that no key names; the
# store removes it after a day (the fs backend's reconcile removes its staging leftovers).
from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule
abort = Rule(ENABLED, rule_filter=Filter(prefix=""), rule_id="abort-incomplete-uploads",
             abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(1))
c.set_bucket_lifecycle(bucket, LifecycleConfig([abort]))
# Ceph 16 ignores If-None-Match in versioned buckets: conditional creates take a guard in an
# unversioned companion bucket (see archive/storage/s3.py).
if not c.bucket_exists(bucket + "-guard"):
    c.make_bucket(bucket + "-guard")
PY
}

# ---------------------------------------------------------------- already up?
if pid_alive "$RUN/rgw.pid" && pid_alive "$RUN/osd.0.pid" && pid_alive "$RUN/mon.a.pid" && http_ready; then
  log "already running"
  ensure_bucket
  echo "$ENDPOINT"
  exit 0
fi

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v ceph-mon  >/dev/null 2>&1 || need_pkgs+=(ceph-mon)
command -v ceph-osd  >/dev/null 2>&1 || need_pkgs+=(ceph-osd)
command -v radosgw   >/dev/null 2>&1 || need_pkgs+=(radosgw)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "${S3_SKIP_APT:-0}" = 1 ] && die "missing: ${need_pkgs[*]} and S3_SKIP_APT=1"
  log "installing ${need_pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh the package lists if the candidate is unknown.
  if ! apt-cache show radosgw >/dev/null 2>&1; then apt-get -o DPkg::Lock::Timeout=600 update -qq; fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw >/dev/null; }
fi

# ---------------------------------------------------------------- helpers
osd_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd.0 up'; }
start_mon() {
  pid_alive "$RUN/mon.a.pid" && return 0
  ceph-mon --cluster ceph -c "$CONF" -i a
  wait_for 30 "monitor" "${CEPH[@]}" mon stat
}
start_osd() {
  pid_alive "$RUN/osd.0.pid" && return 0
  ceph-osd --cluster ceph -c "$CONF" -i 0 2>>"$D/log/osd.0.stderr"
  wait_for 60 "osd.0 up" osd_up
}
start_rgw() {
  pid_alive "$RUN/rgw.pid" && return 0
  radosgw --cluster ceph -c "$CONF" -n client.rgw
  wait_for "$S3_START_TIMEOUT" "radosgw on $ENDPOINT" http_ready
}
ensure_user() {
  if radosgw-admin -c "$CONF" -n client.admin user info --uid="$S3_USER" >/dev/null 2>&1; then
    radosgw-admin -c "$CONF" -n client.admin key create --uid="$S3_USER" --key-type=s3 \
      --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null
  else
    radosgw-admin -c "$CONF" -n client.admin user create --uid="$S3_USER" --display-name="Kluis test user" \
      --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null
  fi
}

# ---------------------------------------------------------------- restart from existing state
# memstore keeps PG data only in the OSD's memory (Pacific's osd_fast_shutdown skips the
# save on umount), so a stopped memstore OSD comes back empty, its PGs never peer and
# radosgw hangs in init: such a cluster is re-created instead of restarted.
if [ -f "$D/.bootstrapped" ] && [ "$(cat "$D/.bootstrapped")" = memstore ] && ! pid_alive "$RUN/osd.0.pid"; then
  log "memstore OSD of $D is down (its data is gone): re-creating the cluster"
  rm -f "$D/.bootstrapped"
fi
if [ -f "$D/.bootstrapped" ]; then
  log "restarting daemons from $D"
  start_mon
  start_osd
  start_rgw
  ensure_user
  ensure_bucket
  log "ready"
  echo "$ENDPOINT"
  exit 0
fi

# ---------------------------------------------------------------- fresh bootstrap
# A half-made dir from an interrupted run: stop what it started, then wipe it. Only a dir
# that is empty or was made by this script (has ceph.conf) is ever wiped.
if [ -d "$D" ]; then
  if [ -n "$(ls -A "$D")" ] && [ ! -f "$CONF" ]; then
    die "$D is not empty and not a deploy/ceph/start.sh data dir; refusing to wipe it"
  fi
  for p in "$RUN"/*.pid; do
    [ -s "$p" ] || continue
    pid=$(cat "$p")
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      ceph-mon|ceph-osd|radosgw) kill "$pid" 2>/dev/null || true ;;
    esac
  done
  sleep 1
  rm -rf "$D"
fi
log "bootstrapping a new cluster in $D ($CEPH_OBJECTSTORE)"
mkdir -p "$D"/{mon,osd,run,log,rgw}
FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
OSD_UUID=$(python3 -c 'import uuid; print(uuid.uuid4())')

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:${CEPH_MON_PORT},v1:127.0.0.1:$((CEPH_MON_PORT + 1))]
public_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_ipv6 = false
# single node, no cephx (loopback only)
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = true
# daemons (radosgw counts as one) default to ms_mon_client_mode=secure, which
# cannot work without cephx: allow crc everywhere
ms_mon_client_mode = crc secure
ms_client_mode = crc secure
ms_mon_cluster_mode = crc secure
ms_mon_service_mode = crc secure
ms_cluster_mode = crc secure
ms_service_mode = crc secure
# all state under the data dir
run_dir = $RUN
admin_socket = $RUN/\$name.asok
pid_file = $RUN/\$name.pid
log_file = $D/log/\$name.log
keyring = $D/keyring
# one OSD: size 1, OSD-level failure domain, few PGs
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
mon_allow_pool_delete = true
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1

[mon]
mon_data = $D/mon/\$cluster-\$id
# commit map changes quickly (default 1 s per proposal makes 14 pool commands take ~14 s)
paxos_propose_interval = 0.05
paxos_min_wait = 0.01

[osd]
osd_data = $D/osd/\$cluster-\$id
osd_objectstore = $CEPH_OBJECTSTORE
memstore_device_bytes = $((CEPH_STORE_SIZE_MB * 1024 * 1024))
bluestore_block_path = $D/osd/\$cluster-\$id/block.file
bluestore_block_size = $((CEPH_STORE_SIZE_MB * 1024 * 1024))
bluestore_block_create = true
bluestore_fsck_on_mount = false
osd_memory_target = 939524096
bluestore_cache_autotune = true
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1

[client.rgw]
# tcp_nodelay=1: without it small GETs take ~45 ms each (Nagle + delayed ACK)
rgw_frontends = beast endpoint=127.0.0.1:${S3_PORT} tcp_nodelay=1
rgw_data = $D/rgw
pid_file = $RUN/rgw.pid
log_file = $D/log/rgw.log
rgw_thread_pool_size = 64
rgw_dns_name = 127.0.0.1
EOF

# monitor: keyring (needed by mkfs even without cephx) + monmap + mkfs
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:${CEPH_MON_PORT},v1:127.0.0.1:$((CEPH_MON_PORT + 1))]" "$D/monmap" >/dev/null
ceph-mon --cluster ceph -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
start_mon
log "monitor up"

# OSD: register, mkfs, start
OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || die "unexpected osd id $OSD_ID"
mkdir -p "$D/osd/ceph-0"
ceph-osd --cluster ceph -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >/dev/null 2>&1 \
  || { tail -20 "$D/log/osd.0.log" >&2; die "osd mkfs failed"; }
start_osd
log "osd.0 up"

# Pre-create the pools radosgw would otherwise create lazily (index/data on the first bucket,
# non-ec on the first multipart upload): each lazy creation costs a test ~2 s.
/usr/bin/python3 - "$CONF" <<'PY'
import json, sys, rados
pools = [".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
         "default.rgw.buckets.index", "default.rgw.buckets.data", "default.rgw.buckets.non-ec"]
with rados.Rados(conffile=sys.argv[1], name="client.admin") as c:
    for p in pools:
        for cmd in ({"prefix": "osd pool create", "pool": p, "pg_num": 8, "pgp_num": 8},
                    {"prefix": "osd pool application enable", "pool": p, "app": "rgw",
                     "yes_i_really_mean_it": True}):
            rc, out, err = c.mon_command(json.dumps(cmd), b"", timeout=30)
            if rc != 0:
                sys.exit(f"{cmd}: {rc} {err}")
PY

log "pools created"
# gateway + user
start_rgw
log "radosgw answering"
ensure_user
ensure_bucket
log "bucket ${S3_BUCKET:-(none)} with object lock + versioning"
echo "$CEPH_OBJECTSTORE" >"$D/.bootstrapped"
log "ready"
echo "$ENDPOINT"
