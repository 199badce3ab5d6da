#!/usr/bin/env bash
# capture.sh - re-captures the SCEP request vectors in this folder (see README.md).
#
#   tests/vectors/capture.sh
#
# Starts a throwaway scepd (target/debug/scepd, or $SCEPD) on loopback behind a capturing proxy
# (tools/capture-proxy.py), enrolls through the proxy with the real clients (micromdm's
# scepclient, certmonger) and with requests built by OpenSSL's PKCS#7 API
# (tools/pkcs7-request.c), and writes here:
#   ca.pem ca.key ra.pem ra.key   the throwaway CA and RA that received the requests
#   NAME.der                      each request message as it crossed the wire
#   NAME.expected                 what openssl reads in NAME.der (and what we told the client)
#   apple-signer.pem/.key         the Apple-shaped request's throwaway signer
#   getcacert-ra.p7b              `openssl crl2pkcs7` of ra.pem then ca.pem
# Every value in NAME.expected is read by openssl, never by scepd, and where we told the client
# what to send (CN, challenge, nonce, transactionID, cipher, digest) the script checks that
# openssl read back exactly that.
#
# Needs: scepclient (Debian `scep`), certmonger, openssl, python3, curl, cc and the OpenSSL
# headers (Debian `libssl-dev`). Regenerating replaces every file above, so the unit tests
# (src/scep/vectors/) then check the new bytes against the new .expected files.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCEPD=${SCEPD:-$ROOT/target/debug/scepd}
W=$(mktemp -d "${TMPDIR:-/tmp}/scep-vectors.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then echo "capture.sh: failed; work dir kept: $W" >&2; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
fail() { echo "capture.sh: $*" >&2; exit 1; }
wait_for() { for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.1; done; fail "timed out waiting for $1"; }
ossl() { openssl "$@" 2>>"$W/openssl.log"; }

# --- a throwaway CA with an RA, a server, and the proxy in front of it ----------------------
[ -x "$SCEPD" ] || fail "$SCEPD missing (cargo build --bin scepd)"
cc -Wall -Wextra -o "$W/pkcs7-request" "$HERE/tools/pkcs7-request.c" -lcrypto
"$SCEPD" init --data "$W/data" >/dev/null
# --allow-des: micromdm's scepclient sends nothing but single DES.
"$SCEPD" serve --data "$W/data" --listen 127.0.0.1:0 --allow-des 2>"$W/scepd.log" &
PIDS+=($!)
wait_for "$W/data/admin.url"
UPSTREAM=$(cat "$W/data/admin.url")
mkdir "$W/cap"
python3 "$HERE/tools/capture-proxy.py" "${UPSTREAM##*:}" "$W/cap" 2>"$W/proxy.log" &
PIDS+=($!)
wait_for "$W/cap/proxy.port"
URL=http://127.0.0.1:$(cat "$W/cap/proxy.port")/scep
for f in ca.pem ca.key ra.pem ra.key; do cp "$W/data/$f" "$HERE/$f"; done
challenge() { "$SCEPD" challenge new --data "$W/data"; }

# --- reading a message with openssl -----------------------------------------------------------

# The first value of signed attribute OID in a SignedData: a string's text, an OCTET STRING's hex.
attr() {
  ossl asn1parse -inform DER -in "$1" | awk -v oid=":$2" '
    found && / prim: / {
      rest = substr($0, index($0, " prim: ") + 7)
      type = substr(rest, 1, 18); sub(/ +$/, "", type); value = substr(rest, 19)
      if (value ~ /^\[HEX DUMP\]:/) { value = tolower(substr(value, 12)) }
      else {
        value = substr(value, 2)
        if (type == "OCTET STRING") {  # asn1parse prints a printable OCTET STRING as text
          hex = ""; for (i = 1; i <= length(value); i++) hex = hex sprintf("%02x", ord[substr(value, i, 1)])
          value = hex
        }
      }
      print type ":" value; exit
    }
    BEGIN { for (i = 32; i < 127; i++) ord[sprintf("%c", i)] = i }
    $NF == oid { found = 1 }'
}
attr_value() { attr "$@" | sed 's/^[^:]*://'; }

# The algorithm named in FIELD (digestAlgorithm, signatureAlgorithm,
# contentEncryptionAlgorithm) in `openssl cms -cmsout -print` of a message, after SECTION.
cms_algorithm() {
  ossl cms -cmsout -print -inform DER -in "$1" | awk -v section="$2:" -v field="$3:" '
    $1 == section { in_section = 1 }
    in_section && $1 == field { want = 1; next }
    want && $1 == "algorithm:" { print $2; exit }'
}

# Writes NAME.expected for $HERE/NAME.der; TOLD_* say what the client was told to send.
describe() {
  local name=$1 msg=$HERE/$1.der d=$W/$1
  mkdir -p "$d"
  ossl cms -verify -noverify -binary -inform DER -in "$msg" -out "$d/env.der" ||
    fail "$name: openssl does not verify the signature"
  ossl pkcs7 -inform DER -in "$msg" -print_certs -out "$d/signer.pem"
  # With -recip, openssl decrypts only with the RecipientInfo naming that certificate.
  local who recipients=
  for who in ra ca; do
    if ossl cms -decrypt -binary -provider legacy -provider default -inform DER -in "$d/env.der" \
      -recip "$HERE/$who.pem" -inkey "$HERE/$who.key" -out "$d/opened-$who.der"; then
      recipients=${recipients:+$recipients,}$who
      [ -s "$d/opened.der" ] || cp "$d/opened-$who.der" "$d/opened.der"
      cmp -s "$d/opened.der" "$d/opened-$who.der" || fail "$name: the RA and the CA read different content"
    fi
  done
  [ -n "$recipients" ] || fail "$name: encrypted to neither the RA nor the CA"
  ossl req -inform DER -in "$d/opened.der" -noout -verify || fail "$name: CSR signature"
  local asn1 text subject signer_pub csr_pub
  asn1=$(ossl asn1parse -inform DER -in "$msg")
  text=$(ossl req -inform DER -in "$d/opened.der" -noout -text)
  subject=$(ossl req -inform DER -in "$d/opened.der" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
  signer_pub=$(ossl x509 -in "$d/signer.pem" -noout -pubkey)
  csr_pub=$(ossl req -inform DER -in "$d/opened.der" -noout -pubkey)
  {
    echo "# $name.der as openssl $(openssl version | awk '{print $2}') read it at capture time (capture.sh), not scepd."
    echo "encoding=$(case $asn1 in *" l=inf "*) echo ber ;; *) echo der ;; esac)"
    echo "message_type=$(attr_value "$msg" 2.16.840.1.113733.1.9.2)"
    echo "transaction_id=$(attr "$msg" 2.16.840.1.113733.1.9.7)"
    echo "sender_nonce=$(attr_value "$msg" 2.16.840.1.113733.1.9.5)"
    echo "digest=$(cms_algorithm "$msg" signerInfos digestAlgorithm)"
    echo "signature_algorithm=$(cms_algorithm "$msg" signerInfos signatureAlgorithm)"
    echo "signer_subject=$(ossl x509 -in "$d/signer.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
    echo "signer_serial=$(ossl x509 -in "$d/signer.pem" -noout -serial | sed 's/^serial=//')"
    echo "signer_is_csr_key=$([ "$signer_pub" = "$csr_pub" ] && echo yes || echo no)"
    echo "recipients=$recipients"
    echo "cipher=$(cms_algorithm "$d/env.der" encryptedContentInfo contentEncryptionAlgorithm)"
    echo "csr_version=$(ossl asn1parse -inform DER -in "$d/opened.der" | awk '/ prim: INTEGER/ { sub(/.*:/, ""); print $0 + 0; exit }')"
    echo "csr_subject=$subject"
    echo "csr_key_bits=$(echo "$text" | sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p')"
    echo "challenge=$(echo "$text" | sed -n 's/^ *challengePassword *://p')"
  } >"$HERE/$name.expected"
  # What we told the client must be what openssl read.
  local key told value
  for key in challenge csr_subject transaction_id sender_nonce cipher digest; do
    told=TOLD_$key
    value=${!told:-}
    [ -z "$value" ] || grep -qxF "$key=$value" "$HERE/$name.expected" ||
      fail "$name: told $key=$value, openssl read $(grep "^$key=" "$HERE/$name.expected")"
  done
  unset TOLD_challenge TOLD_csr_subject TOLD_transaction_id TOLD_sender_nonce TOLD_cipher TOLD_digest
}

# Moves the one message captured since the last call to $HERE/NAME.der, after checking with
# openssl that scepd answered it with a SUCCESS CertRep signed under the CA.
take() {
  local name=$1 files
  files=$(ls "$W/cap"/*-*.der 2>/dev/null | grep -v '\.reply\.der$' || true)
  [ "$(echo "$files" | grep -c .)" = 1 ] || fail "$name: expected one captured PKIOperation, got: $files"
  local reply=${files%.der}.reply.der
  ossl cms -verify -inform DER -in "$reply" -CAfile "$HERE/ca.pem" -purpose any -out /dev/null ||
    fail "$name: the CertRep does not verify"
  [ "$(attr_value "$reply" 2.16.840.1.113733.1.9.3)" = 0 ] || fail "$name: scepd did not answer SUCCESS"
  mv "$files" "$HERE/$name.der"
  rm -f "$reply"
}

# --- micromdm scepclient: POST, single DES, SHA-1 ---------------------------------------------
mkdir "$W/scepclient"
TOLD_challenge=$(challenge)
(cd "$W/scepclient" && scepclient -server-url "$URL" -challenge "$TOLD_challenge" \
  -private-key key.pem -certificate cert.pem -cn scepclient-device) >"$W/scepclient.log" 2>&1 ||
  fail "scepclient: $(cat "$W/scepclient.log")"
take scepclient
TOLD_csr_subject="CN=scepclient-device,OU=MDM,O=scep-client,C=US" describe scepclient

# --- certmonger: GET, through a private daemon ------------------------------------------------
TOLD_challenge=$(challenge)
CM_TIMEOUT=60 bash "$ROOT/tests/support/certmonger-enroll.sh" "$URL" "$HERE/ca.pem" "$TOLD_challenge" \
  certmonger-device "$W/certmonger" >"$W/certmonger.log" 2>&1 || fail "certmonger: $(cat "$W/certmonger.log")"
take certmonger
TOLD_csr_subject="CN=certmonger-device" describe certmonger

# --- requests built with OpenSSL's PKCS#7 API ---------------------------------------------------
# built NAME SUBJECT CIPHER DIGEST der|ber NONCE_BYTES [apple]: a CSR with a challenge, signed
# either by a self-signed certificate over the CSR key with the CSR's subject (sscep) or, for
# apple, by a separate 1024-bit key under CN=MDM SCEP SIGNER, with the CSR rewritten to
# version 2; POSTed through the proxy.
built() {
  local name=$1 subject=$2 cipher=$3 digest=$4 form=$5 nonce_bytes=$6 shape=${7:-sscep} d=$W/$1
  mkdir -p "$d"
  TOLD_challenge=$(challenge)
  printf '[req]\nprompt=no\ndistinguished_name=dn\nattributes=attrs\n[dn]\n%s\n[attrs]\nchallengePassword=%s\n' \
    "$(echo "$subject" | tr ',' '\n' | tac)" "$TOLD_challenge" >"$d/req.cnf"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/key.pem"
  ossl req -new -config "$d/req.cnf" -key "$d/key.pem" -outform DER -out "$d/csr.der"
  if [ "$shape" = apple ]; then
    "$W/pkcs7-request" csr-version "$d/csr.der" "$d/key.pem" 2 "$d/csr.der"
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$HERE/apple-signer.key"
    ossl req -x509 -new -key "$HERE/apple-signer.key" -subj "/CN=MDM SCEP SIGNER" -days 3650 \
      -out "$HERE/apple-signer.pem"
    cp "$HERE/apple-signer.pem" "$d/signer.pem"
    cp "$HERE/apple-signer.key" "$d/signer.key"
  else
    ossl req -x509 -new -config "$d/req.cnf" -key "$d/key.pem" -days 1 -out "$d/signer.pem"
    cp "$d/key.pem" "$d/signer.key"
  fi
  # transactionID: the SHA-1 of the CSR's public key in hex, as clients commonly derive it.
  TOLD_transaction_id=PRINTABLESTRING:$(ossl pkey -in "$d/key.pem" -pubout -outform DER | openssl dgst -sha1 -r | cut -c1-40 | tr a-f A-F)
  TOLD_sender_nonce=$(openssl rand -hex "$nonce_bytes")
  "$W/pkcs7-request" request "$HERE/ra.pem" "$d/signer.pem" "$d/signer.key" "$d/csr.der" "$cipher" "$digest" \
    19 "${TOLD_transaction_id#PRINTABLESTRING:}" "$TOLD_sender_nonce" "$form" "$d/msg.der"
  curl -sf -o /dev/null -H 'Content-Type: application/x-pki-message' --data-binary "@$d/msg.der" \
    "$URL?operation=PKIOperation" || fail "$name: POST failed"
  take "$name"
  TOLD_cipher=$cipher TOLD_digest=$digest TOLD_csr_subject=$subject describe "$name"
}
built sscep-der "CN=sscep-device,O=Example" des-ede3-cbc sha256 der 16
built sscep-ber "CN=sscep-ber-device,O=Example" aes-256-cbc sha512 ber 16
built apple "CN=apple-device,O=Example MDM" aes-128-cbc sha256 der 8 apple

# --- a certs-only PKCS#7 made by OpenSSL, for GetCACert ---------------------------------------
ossl crl2pkcs7 -nocrl -certfile "$HERE/ra.pem" -certfile "$HERE/ca.pem" -outform DER -out "$HERE/getcacert-ra.p7b"

ls -l "$HERE"/*.der "$HERE"/*.expected "$HERE"/*.p7b >&2
echo "capture.sh: done" >&2
