#!/usr/bin/env bash
# enroll.sh - enroll one certificate over SCEP with a private, throw-away
# certmonger instance (no D-Bus, no systemd, nothing under /var/lib/certmonger).
#
# Usage:
#   enroll.sh SCEP_URL CA_PEM CHALLENGE CN OUTDIR [extra `getcert request` args...]
#
#   SCEP_URL   e.g. http://127.0.0.1:18080/scep   (https needs CM_TLS_CA=file)
#   CA_PEM     PEM file with the SCEP CA certificate (passed as -N); "-" = let
#              certmonger discover it via GetCACert only
#   CHALLENGE  challenge password (sent as the CSR challengePassword attribute)
#   CN         common name; the subject becomes CN=<CN>
#   OUTDIR     receives key.pem (unencrypted PKCS#8 PEM) and cert.pem (PEM)
#   extra args are appended to `getcert request`, e.g. -D host.example -g 3072
#
# On success prints the absolute path of the issued certificate on stdout
# (diagnostics go to stderr) and exits 0.  Exit codes: 2 usage, 3 daemon did
# not start, 4 CA config failed, 5 request failed/rejected, 6 timeout.
#
# Environment knobs:
#   CM_TIMEOUT=60         seconds to wait for issuance
#   CM_DEBUG=2            certmonger -d level (log kept in the work dir)
#   CM_KEEP=0             1 = keep the work dir (logs, state) for debugging
#   CM_OPENSSL_LEGACY=0   1 = make certmonger able to decrypt CertRep envelopes
#                         encrypted with single DES (micromdm scepserver <= 2.1
#                         does that); see notes at the bottom.
#   CM_TLS_CA=FILE        CA bundle for an https SCEP_URL (getcert add-scep-ca -R)
#   CM_WORKDIR=DIR        use DIR (created) instead of mktemp -d
set -euo pipefail

usage() { sed -n '2,30p' "$0" >&2; exit 2; }
[ $# -ge 5 ] || usage
SCEP_URL=$1 CA_PEM=$2 CHALLENGE=$3 CN=$4 OUTDIR=$5
shift 5
EXTRA=("$@")

TIMEOUT=${CM_TIMEOUT:-60}
DEBUG=${CM_DEBUG:-2}
CANAME=scep-under-test
REQID=scep-enroll

for b in certmonger getcert; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || { echo "enroll.sh: $b not found" >&2; exit 3; }
done
CERTMONGER=$(command -v certmonger || echo /usr/sbin/certmonger)

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ "$CA_PEM" != "-" ]; then
  [ -r "$CA_PEM" ] || { echo "enroll.sh: cannot read CA_PEM $CA_PEM" >&2; exit 2; }
  CA_PEM=$(cd "$(dirname "$CA_PEM")" && pwd)/$(basename "$CA_PEM")
fi

if [ -n "${CM_WORKDIR:-}" ]; then mkdir -p "$CM_WORKDIR"; W=$(cd "$CM_WORKDIR" && pwd)
else W=$(mktemp -d "${TMPDIR:-/tmp}/certmonger-scep.XXXXXX"); fi
mkdir -p "$W/requests" "$W/cas" "$W/local" "$W/tmp" "$W/config"
chmod 700 "$W"

# --- private daemon environment -------------------------------------------
# All of these are read by the daemon itself.  NB: certmonger clears the
# environment of every child it forks (keeps only CERTMONGER_CONFIG_DIR and
# TMPDIR, sets HOME/PATH/SHELL/TERM), so e.g. OPENSSL_CONF never reaches them.
export CERTMONGER_REQUESTS_DIR=$W/requests      # tracking requests (default /var/lib/certmonger/requests)
export CERTMONGER_CAS_DIR=$W/cas                # CA definitions     (default /var/lib/certmonger/cas)
export CERTMONGER_LOCAL_CA_DIR=$W/local         # built-in "local" CA (default /var/lib/certmonger/local)
export CERTMONGER_CONFIG_DIR=$W/config          # certmonger.conf    (default /etc/certmonger)
export CERTMONGER_TMPDIR=$W/tmp                 # temp files         (default /run/certmonger)
export CERTMONGER_SYSTEM_LOCK_FILE=$W/lock      # single-instance lock (default /var/lib/certmonger/lock!)
export TMPDIR=$W/tmp                            # survives into children
SOCK=$W/certmonger.sock
# getcert talks to the daemon directly over this D-Bus peer-to-peer socket
# instead of the system bus.
export CERTMONGER_PVT_ADDRESS=unix:path=$SOCK

cat > "$W/config/certmonger.conf" <<'EOF'
[defaults]
notification_method = command
notification_destination = /bin/true
EOF

# --- optional: let the daemon decrypt single-DES CertRep envelopes ----------
LAUNCH=("$CERTMONGER")
if [ "${CM_OPENSSL_LEGACY:-0}" = 1 ]; then
  cat > "$W/openssl-legacy.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
EOF
  OSSLDIR=$(openssl version -d 2>/dev/null | sed -n 's/^OPENSSLDIR: "\(.*\)"$/\1/p')
  OSSLDIR=${OSSLDIR:-/usr/lib/ssl}
  if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    # Forked children re-read the *default* config file ($OPENSSLDIR/openssl.cnf)
    # with a cleared environment; shadow it in a private mount namespace.
    LAUNCH=(unshare -m sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh
            "$W/openssl-legacy.cnf" "$OSSLDIR/openssl.cnf" "$CERTMONGER")
  elif command -v cc >/dev/null 2>&1; then
    # Unprivileged alternative: load the config in the parent before it forks.
    printf '%s\n' '#include <openssl/crypto.h>' \
      '__attribute__((constructor)) static void f(void){OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG,NULL);}' \
      > "$W/loadconf.c"
    cc -shared -fPIC -o "$W/loadconf.so" "$W/loadconf.c" -lcrypto
    LAUNCH=(env OPENSSL_CONF="$W/openssl-legacy.cnf" LD_PRELOAD="$W/loadconf.so" "$CERTMONGER")
  else
    echo "enroll.sh: CM_OPENSSL_LEGACY=1 needs root+unshare or a C compiler" >&2; exit 3
  fi
fi

CMPID=
cleanup() {
  local rc=$?
  if [ -n "$CMPID" ] && kill -0 "$CMPID" 2>/dev/null; then
    kill -TERM "$CMPID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CMPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CMPID" 2>/dev/null || true
    wait "$CMPID" 2>/dev/null || true
  fi
  if [ "${CM_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
    echo "enroll.sh: work dir kept: $W (daemon log: $W/certmonger.log)" >&2
  else
    rm -rf "$W"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -n: stay in foreground, log to stderr; -L: no bus at all, only the private
# socket; -P: socket path (absolute => unix:path=...); -d: debug level.
"${LAUNCH[@]}" -n -L -P "$SOCK" -d "$DEBUG" >"$W/certmonger.log" 2>&1 &
CMPID=$!
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && break
  kill -0 "$CMPID" 2>/dev/null || break
  sleep 0.1
done
if ! [ -S "$SOCK" ]; then
  echo "enroll.sh: certmonger did not come up" >&2; tail -20 "$W/certmonger.log" >&2; exit 3
fi

# --- CA definition ---------------------------------------------------------
CAARGS=(-c "$CANAME" -u "$SCEP_URL")
[ "$CA_PEM" != "-" ] && CAARGS+=(-N "$CA_PEM")
[ -n "${CM_TLS_CA:-}" ] && CAARGS+=(-R "$CM_TLS_CA")
if ! getcert add-scep-ca "${CAARGS[@]}" >&2; then
  echo "enroll.sh: getcert add-scep-ca failed" >&2; exit 4
fi

# --- request ---------------------------------------------------------------
printf '%s' "$CHALLENGE" > "$W/challenge"; chmod 600 "$W/challenge"
rm -f "$OUTDIR/cert.pem" "$OUTDIR/key.pem"
T0=$(date +%s.%N)
if ! getcert request -c "$CANAME" -I "$REQID" \
      -k "$OUTDIR/key.pem" -f "$OUTDIR/cert.pem" \
      -N "CN=$CN" -l "$W/challenge" -R ${EXTRA[@]+"${EXTRA[@]}"} >&2; then
  echo "enroll.sh: getcert request failed" >&2; exit 5
fi

# --- wait (bounded) ----------------------------------------------------------
# getcert status exit codes: 0 issued, 1 unknown/comm error, 2 rejected,
# 3 CA unreachable (retrying), 4 config error / NEED_GUIDANCE, 5 working.
deadline=$(( $(date +%s) + TIMEOUT ))
st=5
while :; do
  set +e; getcert status -i "$REQID" >/dev/null 2>&1; st=$?; set -e
  if [ $st = 0 ] && [ -s "$OUTDIR/cert.pem" ] &&
     getcert list -i "$REQID" 2>/dev/null | grep -q 'status: MONITORING'; then break; fi
  case $st in 1|2|4) break ;; esac
  [ "$(date +%s)" -ge "$deadline" ] && { st=6; break; }
  sleep 0.2
done
T1=$(date +%s.%N)

if [ $st != 0 ]; then
  echo "enroll.sh: enrollment failed (getcert status=$st)" >&2
  getcert list -i "$REQID" >&2 || true
  grep -a -E 'SCEP status|Error|error:|rejected|Child status|Unable' "$W/certmonger.log" | tail -15 >&2 || true
  [ $st = 6 ] && exit 6
  exit 5
fi
getcert list -i "$REQID" | grep -E 'status:|subject:|issuer:|expires:' >&2 || true
awk -v a="$T0" -v b="$T1" -v k="$OUTDIR/key.pem" 'BEGIN{printf "enroll.sh: issued in %.2fs; key %s\n", b-a, k}' >&2
echo "$OUTDIR/cert.pem"

# Notes
# * The daemon is stopped with SIGTERM (it exits within ~1-2 s); the request
#   and CA definitions live only in the work dir, so nothing is left behind.
# * CM_OPENSSL_LEGACY: certmonger's response handling runs in a forked child
#   whose libcrypto reads the default openssl.cnf with a cleared environment,
#   so OPENSSL_CONF alone does not help.  Servers that encrypt CertRep with
#   AES (as the client's request is) need none of this.
