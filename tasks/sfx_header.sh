#!/bin/sh
# loam @VERSION@ for @TARGET@: one self-extracting file (this POSIX sh header, then a tar.gz
# payload: Deno @DENO_VERSION@, the bundled agent, the WASM runner, the target's native addons).
#   ./loam-<arch>-linux run             start the agent (first run extracts, once)
#   ./loam-<arch>-linux --payload-info  what this file holds, as JSON, without extracting
# Needs only sh, tail, gzip, tar, sha256sum, mkdir, mv (stock Ubuntu, JetPack, Debian).
set -u
PAYLOAD_OFFSET=@PAYLOAD_OFFSET@
PAYLOAD_BYTES=@PAYLOAD_BYTES@
PAYLOAD_SHA256=@PAYLOAD_SHA256@
PAYLOAD_UNPACKED=@PAYLOAD_UNPACKED@
LOAM_BUILD_VERSION='@VERSION@'
LOAM_BUILD_TARGET='@TARGET@'
LOAM_BUILD_DENO='@DENO_VERSION@'

die() {
  echo "loam: $*" >&2
  exit 1
}

case "$0" in
/*) self=$0 ;;
*) self=$(pwd)/$0 ;;
esac
self=$(readlink -f "$self" 2>/dev/null || echo "$self")

if [ "${1:-}" = "--payload-info" ]; then
  printf '{"kind":"sfx","target":"%s","version":"%s","payload_sha256":"%s","payload_bytes":%s,"deno_version":"%s","header_bytes":%s}\n' \
    "$LOAM_BUILD_TARGET" "$LOAM_BUILD_VERSION" "$PAYLOAD_SHA256" "$PAYLOAD_BYTES" \
    "$LOAM_BUILD_DENO" "$PAYLOAD_OFFSET"
  exit 0
fi

# where to extract: $LOAM_RUNTIME_DIR, else the data dir's runtime/, else as root
# /var/lib/loam/runtime, else the user's cache
if [ -n "${LOAM_RUNTIME_DIR:-}" ]; then
  base=$LOAM_RUNTIME_DIR
elif [ -n "${LOAM_DATA_DIR:-}" ]; then
  base=$LOAM_DATA_DIR/runtime
elif [ "$(id -u)" = 0 ]; then
  base=/var/lib/loam/runtime
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
  base=$XDG_CACHE_HOME/loam/runtime
elif [ -n "${HOME:-}" ]; then
  base=$HOME/.cache/loam/runtime
else
  die "cannot choose where to extract: set LOAM_RUNTIME_DIR (or HOME)"
fi
dir=$base/$PAYLOAD_SHA256

# an extraction is complete once its marker is in place (written last, then renamed into place)
complete() {
  [ -f "$1/.loam-extracted" ] && [ -x "$1/deno" ] && [ -f "$1/loam.js" ] &&
    [ -f "$1/import_map.json" ] && [ -d "$1/deno_dir/npm" ]
}

payload() {
  tail -c +"$((PAYLOAD_OFFSET + 1))" "$self"
}

# refuses before writing anything when the unpacked payload cannot fit where it goes
check_space() {
  set -- $(df -Pk "$base" 2>/dev/null | tail -n 1)
  [ -n "${4:-}" ] || return 0
  need=$(((PAYLOAD_UNPACKED + 1048575) / 1048576))
  [ "$(($4 / 1024))" -ge "$need" ] ||
    die "not enough disk space in $base to extract: needs $need MiB, $(($4 / 1024)) MiB free (free some, or set LOAM_RUNTIME_DIR); the previous version, if any, is untouched"
}

extract() {
  mkdir -p "$base" 2>/dev/null || die "cannot create $base: set LOAM_RUNTIME_DIR to a writable directory"
  # what first runs killed mid-way left (their process is gone)
  for old in "$base"/.extract-*; do
    [ -e "$old" ] || continue
    pid=${old##*/.extract-}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null || rm -rf "$old"
  done
  size=$(wc -c <"$self")
  [ "$((size - PAYLOAD_OFFSET))" -eq "$PAYLOAD_BYTES" ] ||
    die "$self is damaged: payload is $((size - PAYLOAD_OFFSET)) bytes, expected $PAYLOAD_BYTES (truncated or appended to); copy the file again"
  got=$(payload | sha256sum | cut -d' ' -f1)
  [ "$got" = "$PAYLOAD_SHA256" ] ||
    die "$self is damaged: payload hash mismatch (expected sha256:$PAYLOAD_SHA256, got sha256:$got); copy the file again"
  check_space
  tmp=$base/.extract-$$-$(date +%s)
  mkdir "$tmp" || die "cannot write to $base"
  # the error text is kept in memory: on a full disk no file can hold it
  if ! why=$(payload | gzip -dc | tar -xf - -C "$tmp" 2>&1); then
    rm -rf "$tmp"
    why=$(printf '%s\n' "$why" | grep -v '^$' | head -n 1) # tar's first complaint names the cause
    die "cannot extract into $base: ${why:-tar failed} (the previous version, if any, is untouched)"
  fi
  "$tmp/deno" --version >/dev/null 2>&1 || {
    rm -rf "$tmp"
    die "the Deno in this file does not start on this machine ($(uname -m)): is it the file for $LOAM_BUILD_TARGET, and is glibc new enough?"
  }
  if ! echo "$PAYLOAD_SHA256" >"$tmp/.loam-extracted" || ! sync; then
    rm -rf "$tmp"
    die "cannot finish extracting into $base (disk full?)"
  fi
  if [ -e "$dir" ]; then
    if complete "$dir"; then # another first run finished before this one
      rm -rf "$tmp"
      return
    fi
    mv "$dir" "$base/.damaged-$$" && rm -rf "$base/.damaged-$$"
  fi
  if mv -T "$tmp" "$dir" 2>/dev/null; then
    extracted=1
  else
    rm -rf "$tmp"
    complete "$dir" || die "cannot move the extracted runtime into $dir"
  fi
  # keep this version and the one extracted before it; older ones go
  ls -1t "$base"/*/.loam-extracted 2>/dev/null | while read -r marker; do
    old=${marker%/.loam-extracted}
    [ "$old" = "$dir" ] && continue
    if [ -n "${kept:-}" ]; then rm -rf "$old"; else kept=$old; fi
  done
}

if ! complete "$dir"; then
  [ -e "$dir" ] && echo "loam: $dir is incomplete or damaged; extracting again" >&2
  extract
fi

LOAM_SELF=$self LOAM_PAYLOAD_DIR=$dir DENO_DIR=$dir/deno_dir
DENO_NO_UPDATE_CHECK=1 DENO_NO_PACKAGE_JSON=1
export LOAM_SELF LOAM_PAYLOAD_DIR DENO_DIR DENO_NO_UPDATE_CHECK DENO_NO_PACKAGE_JSON

# the agent, exactly as every run starts it (Deno's caches are keyed by path and flags); exec,
# so that systemd's main PID is Deno's
agent() {
  exec "$dir/deno" run --cached-only --no-config --no-lock \
    --import-map="$dir/import_map.json" @AGENT_FLAGS@ "$dir/loam.js" "$@"
}

if [ -n "${extracted:-}" ]; then
  # One quiet start right after extracting: it checks the agent starts, and it leaves Deno's
  # analysis of the bundle cached at this path. Without it the first real run parses the 2 MB
  # bundle itself and keeps the parser's memory: ~150 MiB idle RSS instead of ~100.
  if ! why=$(agent version 2>&1 >/dev/null); then
    why=$(printf '%s\n' "$why" | grep -v '^$' | tail -n 1)
    die "the extracted agent does not start: $why"
  fi
fi
agent "$@"
