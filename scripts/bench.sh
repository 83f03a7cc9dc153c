#!/usr/bin/env bash
# Whole-process benchmarks of the helper against a floor (docs/PERFORMANCE.md). Every
# `docker build` runs `list` and then `get` per registry, each a new process, so one
# process per call is what is timed:
#
#   floor      scripts/baseline (its own Cargo project, built --release here): reads a
#              JSON file of N entries, each an armored age ciphertext of a 40-character
#              token, parses it into serde_json::Value, finds the entry, decrypts it with
#              one X25519 identity and prints the answer — the least any helper must do
#   get        lockbox `get` with LOCKBOX_IDENTITY set (the CI path: opens the age slot,
#              then the entry), on a vault of the same N entries, at N = 1, 200, 10 000,
#              for both builds people run:
#                dynamic  `cargo build --release` (what `cargo install --path .` builds)
#                static   scripts/package.sh's build for the Debian package
#                         (--target x86_64-unknown-linux-gnu, +crt-static)
#   list+50    `list` and then 50 `get`s (a classic build) at 200 entries, against the
#              floor's `list` and 50 floor `get`s (dynamic build)
#   store      lockbox `store` (replacing an entry) on a 10 000-entry vault, against
#              `docker-credential-pass store` with 10 000 entries in its store (dynamic)
#
# Timing: each group runs interleaved (floor, dynamic, static, floor, …), ROUNDS times
# (default 5); a ratio is the median, over the rounds, of lockbox's median over the
# floor's median that round. Beside each run's wall time, its CPU time and minor page
# faults (the child's rusage) are kept.
#
# The second method: instruction counts of one run of each `get` under valgrind's
# callgrind (user-space instructions, the dynamic loader included, the kernel not).
# They repeat exactly on a loaded machine, where times do not; they do not see what
# the kernel and the hypervisor do for the process (exec, page faults, CPUID traps),
# which is much of a 1–2 ms process (docs/PERFORMANCE.md says how the two agree).
# Skipped, and said so, when valgrind is missing.
#
# Everything lives in a temp directory (under target/ by default, so stores fsync a real
# disk; BENCH_DIR=/somewhere to change), with its own DOCKER_CONFIG, GNUPGHOME,
# PASSWORD_STORE_DIR, XDG_RUNTIME_DIR and LOCKBOX_AGENT_DIR — never the user's; the
# gpg-agent of the throwaway GNUPGHOME is stopped at the end. Results:
# target/bench/<pair>.json (every run: wall ms, CPU ms, page faults) and
# target/bench/results.md.
#
# Usage: bash scripts/bench.sh   (needs age-keygen and python3, and valgrind for the
# instruction counts; for the store comparison pass, gpg and docker-credential-pass —
# Debian: age valgrind pass golang-docker-credential-helpers). Nothing here is a
# pass/fail check. ROUNDS=N for more rounds; SKIP_BUILD=1 times the binaries already
# built.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${ROUNDS:-5}

for tool in age-keygen python3; do
  command -v "$tool" >/dev/null || {
    echo "bench.sh needs $tool" >&2
    exit 1
  }
done

out="$root/target/bench"
mkdir -p "$out" "${BENCH_DIR:-$root/target}"
work=$(mktemp -d "${BENCH_DIR:-$root/target}/bench.XXXXXX")
bin="$root/target/release/docker-credential-lockbox"
static_target=x86_64-unknown-linux-gnu
static_bin="$root/target/$static_target/release/docker-credential-lockbox"
floor="$root/target/baseline/release/lockbox-floor"

cleanup() {
  if [ -d "$work/gnupg" ]; then
    GNUPGHOME="$work/gnupg" gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n==== %s ====\n' "$*"; }

section "build"
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet --locked --bin docker-credential-lockbox
  # The static build as scripts/package.sh makes it.
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --quiet --locked --target "$static_target" --bin docker-credential-lockbox
  CARGO_TARGET_DIR="$root/target/baseline" \
    cargo build --release --quiet --manifest-path scripts/baseline/Cargo.toml
fi
for b in "$bin" "$static_bin" "$floor"; do
  [ -x "$b" ] || {
    echo "missing $b (unset SKIP_BUILD)" >&2
    exit 1
  }
done
# Timed: copies in the work directory, as `cargo install` and dpkg leave a binary (a
# file written by copying), for lockbox and the floor alike. The linker's own output
# costs more page faults while its pages are cached as the linker wrote them (here
# about 10 more per lockbox run, 3 more per floor run).
mkdir -p "$work/bin"
install -m 0755 "$bin" "$work/bin/docker-credential-lockbox"
install -m 0755 "$static_bin" "$work/bin/docker-credential-lockbox-static"
install -m 0755 "$floor" "$work/bin/lockbox-floor"
bin="$work/bin/docker-credential-lockbox"
static_bin="$work/bin/docker-credential-lockbox-static"
floor="$work/bin/lockbox-floor"
needs() { readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' '; }
echo "dynamic: $(wc -c <"$bin") bytes; needs $(needs "$bin")"
echo "static:  $(wc -c <"$static_bin") bytes; needs $(needs "$static_bin")(nothing: static)"
echo "floor:   $(wc -c <"$floor") bytes; needs $(needs "$floor")"

export XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
# The agent's socket directory is a function of the uid; this run's own keeps the
# developer's real agent out of the numbers (no measured call asks it).
export LOCKBOX_AGENT_DIR="$work/run/lockbox"
unset LOCKBOX_VAULT LOCKBOX_IDENTITY LOCKBOX_IDENTITY_FILE LOCKBOX_PASSPHRASE_FILE
age-keygen -o "$work/identity.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/identity.txt")
# Exported, not spelled in the commands, so the key stays out of the exported results.
LOCKBOX_IDENTITY=$(grep '^AGE-SECRET-KEY-1' "$work/identity.txt")
export LOCKBOX_IDENTITY

# A vault of N entries registry{i}.example.com / user{i} / ghp_{i:036}, made by the real
# binary: `init`, then one `import` of a config.json holding N plaintext auths.
make_vault() { # N
  local dir="$work/n$1"
  mkdir -p "$dir/docker"
  python3 - "$1" "$dir/docker/config.json" <<'PY'
import base64, json, sys
n, path = int(sys.argv[1]), sys.argv[2]
auths = {f"registry{i}.example.com": {"auth": base64.b64encode(f"user{i}:ghp_{i:036}".encode()).decode()} for i in range(n)}
json.dump({"auths": auths}, open(path, "w"))
PY
  DOCKER_CONFIG="$dir/docker" "$bin" init --recipient "$recipient" >/dev/null
  DOCKER_CONFIG="$dir/docker" "$bin" import >/dev/null
  "$floor" make "$1" "$recipient" >"$dir/floor.json"
  local middle=$(($1 / 2))
  printf 'registry%s.example.com\n' "$middle" >"$dir/server"
  # Every measured call must really answer.
  DOCKER_CONFIG="$dir/docker" "$bin" get <"$dir/server" | grep -q "\"Secret\":\"ghp_0*$middle\"" &&
    DOCKER_CONFIG="$dir/docker" "$static_bin" get <"$dir/server" | grep -q "\"Secret\":\"ghp_0*$middle\"" &&
    "$floor" get "$dir/floor.json" "$work/identity.txt" <"$dir/server" | grep -q "\"Secret\":\"ghp_0*$middle\"" || {
    echo "get does not answer at N=$1" >&2
    exit 1
  }
  echo "N=$1: vault $(wc -c <"$dir/docker/lockbox/vault.json") bytes, floor file $(wc -c <"$dir/floor.json") bytes"
}

# ROUNDS rounds of RUNS interleaved runs of two or more commands (floor, lockbox, …),
# each a process spawned with posix_spawn and waited for with wait4 (its CPU time and
# minor page faults too); one row per lockbox command: the medians and the ratios to
# the first command. Not hyperfine: hyperfine 1.15 (Debian 12) cannot feed stdin
# without a shell, and its correction for the shell's start-up (about as long as the
# 1–3 ms being measured) left medians near zero here. A command is
# `[LABEL::][VAR=value…] program args… [< file]`; its row is NAME or NAME-LABEL.
paired() { # name, runs, floor-command, command…
  python3 - "$rounds" "$@" <<'PY' | tee -a "$out/results.md"
import json, os, shlex, statistics, sys, time
rounds, name, runs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cmds = [tuple(a.split("::", 1)) if "::" in a else ("", a) for a in sys.argv[4:]]
def parse(cmd):
    words, env, stdin = shlex.split(cmd), dict(os.environ), None
    while "=" in words[0] and not words[0].startswith("/"):
        k, v = words.pop(0).split("=", 1); env[k] = v
    if "<" in words:
        i = words.index("<"); stdin = words[i + 1]; words = words[:i]
    return words, env, stdin
def once(words, env, stdin):
    fd = os.open(stdin or "/dev/null", os.O_RDONLY)
    null = os.open("/dev/null", os.O_WRONLY)
    t = time.perf_counter_ns()
    pid = os.posix_spawnp(words[0], words, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status, ru = os.wait4(pid, 0)
    dt = time.perf_counter_ns() - t
    os.close(fd); os.close(null)
    assert os.waitstatus_to_exitcode(status) == 0, (words, status)
    return dt / 1e6, (ru.ru_utime + ru.ru_stime) * 1e3, ru.ru_minflt
parsed = [parse(c) for _, c in cmds]
for p in parsed:  # warm-up: page cache, dynamic loader
    for _ in range(3): once(*p)
raw = [[[] for _ in range(rounds)] for _ in cmds]  # command → round → [(wall, cpu, faults)]
for r in range(rounds):
    for _ in range(runs):
        for i, p in enumerate(parsed):
            raw[i][r].append(once(*p))
json.dump({"name": name, "commands": [c for _, c in cmds], "fields": ["wall_ms", "cpu_ms", "minflt"],
           "rounds": raw}, open(f"{os.environ['BENCH_OUT']}/{name}.json", "w"))
med = lambda xs, k: statistics.median(x[k] for x in xs)
across = lambda i, k: statistics.median(med(raw[i][r], k) for r in range(rounds))
for i in range(1, len(cmds)):
    label = name + (f"-{cmds[i][0]}" if cmds[i][0] else "")
    ratios = sorted(med(raw[i][r], 0) / med(raw[0][r], 0) for r in range(rounds))
    cpu = statistics.median(med(raw[i][r], 1) / med(raw[0][r], 1) for r in range(rounds))
    print(f"| {label} | {across(0, 0):.2f} | {across(i, 0):.2f} | **{statistics.median(ratios):.2f}×** "
          f"| {ratios[0]:.2f}–{ratios[-1]:.2f} | {cpu:.2f}× | {across(0, 2):.0f} / {across(i, 2):.0f} |")
PY
}
export BENCH_OUT="$out"

section "vaults"
for n in 1 200 10000; do make_vault "$n"; done

{
  echo
  echo "<!-- scripts/bench.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -srm), ROUNDS=$rounds -->"
  echo
  echo "| pair | floor / other [ms] | lockbox [ms] | ratio (median) | ratio range | CPU-time ratio | page faults, floor / lockbox |"
  echo "|:---|---:|---:|---:|---:|---:|---:|"
} >"$out/results.md"

section "get: both builds against the floor"
for n in 1 200 10000; do
  d="$work/n$n"
  runs=60
  [ "$n" = 10000 ] && runs=30
  paired "get-$n" "$runs" "$floor get $d/floor.json $work/identity.txt < $d/server" \
    "dynamic::DOCKER_CONFIG=$d/docker $bin get < $d/server" \
    "static::DOCKER_CONFIG=$d/docker $static_bin get < $d/server"
done

section "get: instructions (valgrind callgrind, one run each)"
{
  echo
  echo "| get, instructions | floor | dynamic | static | dynamic ÷ floor | static ÷ floor |"
  echo "|:---|---:|---:|---:|---:|---:|"
} >>"$out/results.md"
if command -v valgrind >/dev/null; then
  instructions() { # command…, stdin from the caller: callgrind's total
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
      sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
  }
  for n in 1 200 10000; do
    d="$work/n$n"
    f=$(instructions "$floor" get "$d/floor.json" "$work/identity.txt" <"$d/server")
    dy=$(DOCKER_CONFIG="$d/docker" instructions "$bin" get <"$d/server")
    st=$(DOCKER_CONFIG="$d/docker" instructions "$static_bin" get <"$d/server")
    python3 -c 'import sys; n, f, d, s = sys.argv[1], *map(int, sys.argv[2:]); print(f"| get-{n} | {f:,} | {d:,} | {s:,} | {d/f:.2f}× | {s/f:.2f}× |")' \
      "$n" "$f" "$dy" "$st" | tee -a "$out/results.md"
  done
else
  echo "valgrind missing: instruction counts not measured" | tee -a "$out/results.md"
fi
{
  echo
  echo "| pair | floor / other [ms] | lockbox [ms] | ratio (median) | ratio range | CPU-time ratio | page faults, floor / lockbox |"
  echo "|:---|---:|---:|---:|---:|---:|---:|"
} >>"$out/results.md"

section "list + 50 gets at 200 entries"
d="$work/n200"
for i in $(seq 0 4 196); do printf 'registry%s.example.com\n' "$i" >"$d/s$i"; done
cat >"$work/build-floor.sh" <<EOF
"$floor" list "$d/floor.json" >/dev/null
for i in \$(seq 0 4 196); do "$floor" get "$d/floor.json" "$work/identity.txt" < "$d/s\$i" >/dev/null; done
EOF
cat >"$work/build-lockbox.sh" <<EOF
export DOCKER_CONFIG="$d/docker"
"$bin" list >/dev/null
for i in \$(seq 0 4 196); do "$bin" get < "$d/s\$i" >/dev/null; done
EOF
paired "list+50get-200" 10 "sh $work/build-floor.sh" "sh $work/build-lockbox.sh"

section "store at 10 000 entries: lockbox against docker-credential-pass"
if command -v docker-credential-pass >/dev/null && command -v pass >/dev/null &&
  command -v gpg >/dev/null; then
  export GNUPGHOME="$work/gnupg" PASSWORD_STORE_DIR="$work/pass"
  mkdir -m 700 "$GNUPGHOME"
  # A throwaway key without a passphrase: gpg-agent never prompts (the kindest case for
  # pass).
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'lockbox bench <bench@invalid>' future-default default never 2>/dev/null
  fpr=$(gpg --list-keys --with-colons | awk -F: '/^fpr/ { print $10; exit }')
  pass init "$fpr" >/dev/null
  payload='{"ServerURL":"registry5000.example.com","Username":"user5000","Secret":"ghp_000000000000000000000000000000005000"}'
  printf '%s' "$payload" >"$work/store.json"
  printf '%s' "$payload" | docker-credential-pass store
  # 10 000 entries in pass's layout (docker-credential-helpers/<base64 URL>/<user>.gpg):
  # copies of one real entry (pass's store reads none of them; this is only its size).
  one=$(find "$PASSWORD_STORE_DIR/docker-credential-helpers" -name '*.gpg' | head -n1)
  python3 - "$PASSWORD_STORE_DIR/docker-credential-helpers" "$one" <<'PY'
import base64, os, shutil, sys
base, one = sys.argv[1], sys.argv[2]
for i in range(10000):
    d = os.path.join(base, base64.urlsafe_b64encode(f"registry{i}.example.com".encode()).decode())
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(os.path.join(d, f"user{i}.gpg")):
        shutil.copy(one, os.path.join(d, f"user{i}.gpg"))
PY
  docker-credential-pass list | python3 -c 'import json,sys; n=len(json.load(sys.stdin)); assert n == 10000, n; print(f"pass holds {n} entries")'
  paired "store-10000-vs-pass" 20 "docker-credential-pass store < $work/store.json" \
    "DOCKER_CONFIG=$work/n10000/docker $bin store < $work/store.json"
else
  echo "docker-credential-pass, pass or gpg missing: store comparison not measured" | tee -a "$out/results.md"
fi

section "summary"
echo "<!-- load at the end: $(cut -d' ' -f1-3 /proc/loadavg) -->" >>"$out/results.md"
echo "(in the store row, the \"floor / other\" column is docker-credential-pass)" >>"$out/results.md"
cat "$out/results.md"
echo
echo "written: $out/results.md (and one JSON of every time per pair)"
