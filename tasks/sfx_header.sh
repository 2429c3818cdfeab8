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

# Without systemd (no INVOCATION_ID or NOTIFY_SOCKET), `run` is a loop that runs the file as its
# child: on exit 75 ("restart me", after a self-update) it runs the file the agent named in
# $LOAM_HANDOVER; while an update is on trial (<bin>/trial), a start that failed is tried again,
# so that the new file's header can count it and roll back. TERM, INT and HUP are passed on; the
# agent stops by itself when this loop is gone (LOAM_SUPERVISOR_PID).
if [ "${1:-}" = run ] && [ -z "${INVOCATION_ID:-}${NOTIFY_SOCKET:-}${LOAM_SUPERVISOR_PID:-}" ]; then
  LOAM_SUPERVISOR_PID=$$
  mkdir -p "$base" 2>/dev/null
  LOAM_HANDOVER=$base/.handover-$$
  export LOAM_SUPERVISOR_PID LOAM_HANDOVER
  next=$self
  retries=0
  while :; do
    rm -f "$LOAM_HANDOVER"
    sh "$next" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    while :; do
      wait "$child"
      code=$?
      kill -0 "$child" 2>/dev/null || break
    done
    trap - TERM INT HUP
    handed=$(cat "$LOAM_HANDOVER" 2>/dev/null)
    rm -f "$LOAM_HANDOVER"
    if [ "$code" = 75 ]; then
      next=${handed:-$next}
      continue
    fi
    on=$(readlink -f "$next")
    if [ "$code" != 0 ] && [ "$retries" -lt 5 ] && grep -qx 'state=trying' "${on%/*/loam}/trial" 2>/dev/null; then
      retries=$((retries + 1))
      sleep 1
      continue
    fi
    exit "$code"
  done
fi

# `run` of a self-update on trial, before any new code runs (src/system/update_trial.ts holds the
# marker's format): this file is <bin>/<version>/loam beside a `current` link, and the marker
# names its version. Each start counts; after 3 starts without the agent confirming, or past the
# deadline, `current` goes back to the version before, and that one runs.
bin=
case $self in */bin/*/loam) [ -L "${self%/*/loam}/current" ] && bin=${self%/*/loam} ;; esac

read_trial() {
  directive='' from='' to='' deadline='' starts='' peers='' state=''
  [ -f "$bin/trial" ] || return 1
  while IFS= read -r line; do
    case $line in
    directive=*) directive=${line#directive=} ;;
    from=*) from=${line#from=} ;;
    to=*) to=${line#to=} ;;
    deadline=*) deadline=${line#deadline=} ;;
    starts=*) starts=${line#starts=} ;;
    peers=*) peers=${line#peers=} ;;
    state=*) state=${line#state=} ;;
    esac
  done <"$bin/trial"
  case $starts in '' | *[!0-9]*) starts=0 ;; esac
  case $deadline in '' | *[!0-9]*) deadline=0 ;; esac
  [ "$state" = trying ] && [ "$to" = "$LOAM_BUILD_VERSION" ] && [ -n "$from" ]
}

# rewrites the marker (temp, then rename) with $starts, state $1 and reason $2
write_trial() {
  { printf 'directive=%s\nfrom=%s\nto=%s\ndeadline=%s\nstarts=%s\npeers=%s\nstate=%s\n' \
    "$directive" "$from" "$to" "$deadline" "$starts" "$peers" "$1"
    [ -z "$2" ] || printf 'reason=%s\n' "$2"; } >"$bin/.trial-$$" &&
    mv -f "$bin/.trial-$$" "$bin/trial" && sync
}

point() { # point <link> <version>: by rename, so the link is never missing
  ln -sfn "$2" "$bin/.$1-$$" && mv -Tf "$bin/.$1-$$" "$bin/$1"
}

if [ "${1:-}" = run ] && [ -n "$bin" ] && read_trial; then
  starts=$((starts + 1))
  why=
  if [ "$starts" -gt 3 ]; then
    why="crashed at start: started $((starts - 1)) times without becoming ready"
  elif [ "$(date +%s)" -ge "$deadline" ]; then
    why="not ready by its deadline"
  fi
  if [ -z "$why" ]; then
    write_trial trying "" || echo "loam: cannot count this start in $bin/trial (disk full?)" >&2
  elif [ -f "$bin/$from/loam" ]; then
    write_trial rolled_back "$why" || true
    point current "$from" && point previous "$to" && sync
    echo "loam: $LOAM_BUILD_VERSION $why; rolling back to $from" >&2
    exec sh "$bin/$from/loam" "$@"
  fi
fi

# a file run by hand hands over to the version its data dir's bin/current names (self-updated):
# the data dir of --data-dir or $LOAM_DATA_DIR, else the default one (not a config file's)
data_dir() {
  while [ $# -gt 0 ]; do
    case $1 in
    --data-dir=*) echo "${1#--data-dir=}" && return ;;
    --data-dir) [ $# -ge 2 ] && echo "$2" && return ;;
    esac
    shift
  done
  if [ -n "${LOAM_DATA_DIR:-}" ]; then
    echo "$LOAM_DATA_DIR"
  elif [ "$(id -u)" = 0 ]; then
    echo /var/lib/loam
  elif [ -n "${XDG_STATE_HOME:-}" ]; then
    echo "$XDG_STATE_HOME/loam"
  elif [ -n "${HOME:-}" ]; then
    echo "$HOME/.local/state/loam"
  fi
}
if [ "${1:-}" = run ] && [ -z "$bin" ]; then
  data=$(data_dir "$@")
  if [ -n "$data" ] && [ -f "$data/bin/current/loam" ]; then
    next=$(readlink -f "$data/bin/current/loam")
    [ "$next" = "$self" ] || exec sh "$next" "$@"
  fi
fi

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
  # keep this version and the one extracted before it; older ones go, unless an agent still
  # runs from one (another agent sharing this runtime dir, on a version of its own)
  ls -1t "$base"/*/.loam-extracted 2>/dev/null | while read -r marker; do
    old=${marker%/.loam-extracted}
    [ "$old" = "$dir" ] && continue
    if [ -z "${kept:-}" ]; then
      kept=$old
    elif ! in_use "$old"; then
      rm -rf "$old"
    fi
  done
}

# whether a process runs the Deno of the extraction $1 (those this user may see)
in_use() {
  for exe in /proc/[0-9]*/exe; do
    [ "$(readlink "$exe" 2>/dev/null)" = "$1/deno" ] && return 0
  done
  return 1
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
