#!/usr/bin/env bash
# Whole-process benchmarks of the helper (docs/PERFORMANCE.md), with hyperfine.
#
# Builds --release, makes a throwaway vault with 10 entries opened by an age identity,
# and times one process per call — what Docker pays, since every `docker build` runs
# `list` and then `get` per registry, each a new process:
#
#   baseline   a minimal Rust program that reads the vault file and prints it
#              (scripts/baseline/readfile.rs, rustc -O): the design's yardstick for `get`
#   get        LOCKBOX_IDENTITY set (the CI path)
#   get-agent  no key variable: asks the agent started by `unlock`
#   list, version
#   store      replaces an entry: lock, read, encrypt, atomic write with fsync
#   erase      removes an entry (re-stored before each run, untimed)
#   pass get   docker-credential-pass with a passphrase-less GnuPG key, when
#              docker-credential-pass, pass and gpg are installed
#
# Everything lives in a temp directory (under target/ by default, so store/erase fsync
# a real disk; BENCH_DIR=/somewhere to change), with its own DOCKER_CONFIG, GNUPGHOME,
# PASSWORD_STORE_DIR, XDG_RUNTIME_DIR and LOCKBOX_AGENT_DIR; the agents it starts are stopped at the end.
# Results: target/bench/*.md (hyperfine markdown) and *.json.
#
# Usage: bash scripts/bench.sh   (needs hyperfine and age-keygen; Debian: hyperfine age)
# Nothing here is a pass/fail check: the numbers are for people.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

for tool in hyperfine age-keygen rustc; do
  command -v "$tool" >/dev/null || {
    echo "bench.sh needs $tool" >&2
    exit 1
  }
done

out="$root/target/bench"
mkdir -p "$out" "${BENCH_DIR:-$root/target}"
work=$(mktemp -d "${BENCH_DIR:-$root/target}/bench.XXXXXX")
bin="$root/target/release/docker-credential-lockbox"

cleanup() {
  # Stop only what this script started: our agent (via its own `lock`), and the
  # gpg-agent of our throwaway GNUPGHOME.
  if [ -S "$work/run/lockbox/agent.sock" ] || [ -d "$work/run/lockbox" ]; then
    LOCKBOX_AGENT_DIR="$work/run/lockbox" "$bin" lock --all >/dev/null 2>&1 || true
  fi
  if [ -d "$work/gnupg" ]; then
    GNUPGHOME="$work/gnupg" gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n==== %s ====\n' "$*"; }

section "build"
cargo build --release --quiet
rustc -O --edition 2021 -o "$work/readfile" scripts/baseline/readfile.rs

section "vault: 10 entries, one age slot"
export DOCKER_CONFIG="$work/docker"
export XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
# The agent's socket directory is a function of the uid; this run's own keeps the
# developer's real agent out of the numbers.
export LOCKBOX_AGENT_DIR="$work/run/lockbox"
unset LOCKBOX_VAULT LOCKBOX_IDENTITY LOCKBOX_IDENTITY_FILE LOCKBOX_PASSPHRASE_FILE
age-keygen -o "$work/identity.txt" 2>/dev/null
"$bin" init --recipient "$(age-keygen -y "$work/identity.txt")" >/dev/null
payload() { # server, user, secret
  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$1" "$2" "$3"
}
for i in $(seq 0 9); do
  payload "registry$i.example.com" "user$i" "ghp_$(printf '%036d' "$i")" | "$bin" store
done
vault="$DOCKER_CONFIG/lockbox/vault.json"
printf 'registry5.example.com\n' >"$work/server"
payload registry5.example.com user5 "ghp_$(printf '%036d' 5)" >"$work/store.json"
printf 'erased.example.com\n' >"$work/erase-server"
payload erased.example.com someone secret >"$work/erase.json"
# Exported, not spelled in the commands, so the key stays out of the exported results;
# `LOCKBOX_IDENTITY=` (empty counts as unset) turns it off for get-agent.
LOCKBOX_IDENTITY=$(grep '^AGE-SECRET-KEY-1' "$work/identity.txt")
export LOCKBOX_IDENTITY
echo "$(wc -c <"$vault") bytes, $("$bin" list | tr ',' '\n' | wc -l) entries"
# Every measured `get` must really print the credentials.
"$bin" get <"$work/server" | grep -q '"Secret":"ghp_' ||
  {
    echo "get does not work" >&2
    exit 1
  }

common=(--warmup 20 --min-runs 100 --time-unit millisecond)
cmds=(
  -n baseline "$work/readfile $vault"
  -n get "$bin get < $work/server"
  -n list "$bin list"
  -n version "$bin version"
)

section "agent"
if "$bin" unlock --identity-file "$work/identity.txt" --timeout 15m >/dev/null 2>&1 &&
  LOCKBOX_IDENTITY='' "$bin" get <"$work/server" | grep -q '"Secret":"ghp_'; then
  cmds+=(-n get-agent "LOCKBOX_IDENTITY= $bin get < $work/server")
else
  echo "unlock did not work here: get-agent not measured"
fi

section "docker-credential-pass"
if command -v docker-credential-pass >/dev/null && command -v pass >/dev/null &&
  command -v gpg >/dev/null; then
  export GNUPGHOME="$work/gnupg" PASSWORD_STORE_DIR="$work/pass"
  mkdir -m 700 "$GNUPGHOME"
  # A throwaway key without a passphrase: gpg-agent never prompts (the kindest case
  # for pass; a real one usually has a passphrase cached by gpg-agent).
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'lockbox bench <bench@invalid>' future-default default never 2>/dev/null
  fpr=$(gpg --list-keys --with-colons | awk -F: '/^fpr/ { print $10; exit }')
  pass init "$fpr" >/dev/null
  for i in $(seq 0 9); do
    payload "registry$i.example.com" "user$i" "ghp_$(printf '%036d' "$i")" |
      docker-credential-pass store
  done
  if docker-credential-pass get <"$work/server" | grep -q '"Secret":"ghp_'; then
    cmds+=(-n "pass get" "docker-credential-pass get < $work/server")
  else
    echo "docker-credential-pass get did not work here: not measured"
  fi
else
  echo "docker-credential-pass, pass or gpg missing: not measured"
fi

section "read-only calls"
hyperfine "${common[@]}" --export-markdown "$out/read.md" --export-json "$out/read.json" \
  "${cmds[@]}"

section "store (replace an entry; atomic write + fsync)"
hyperfine "${common[@]}" --export-markdown "$out/store.md" --export-json "$out/store.json" \
  -n store "$bin store < $work/store.json"

section "erase (the entry is re-stored before each run, untimed)"
hyperfine "${common[@]}" --export-markdown "$out/erase.md" --export-json "$out/erase.json" \
  --prepare "$bin store < $work/erase.json" \
  -n erase "$bin erase < $work/erase-server"

section "summary"
{
  echo "<!-- scripts/bench.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -srm) -->"
  cat "$out/read.md"
  echo
  cat "$out/store.md"
  echo
  cat "$out/erase.md"
} >"$out/results.md"
cat "$out/results.md"
echo
echo "written: $out/results.md (and read/store/erase .json)"
