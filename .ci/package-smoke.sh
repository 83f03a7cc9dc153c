#!/usr/bin/env bash
# The package, installed for real (run by .ci/run as root on a CI machine, never by
# the README's test command): dpkg -i target/debian/*.deb, then as a fresh non-root
# user: init, `docker login` through the helper against the CNCF distribution registry
# on 127.0.0.1 (htpasswd auth; the Docker CLI logs in client-side when no daemon
# answers), get, unlock, `lockbox status`, `lockbox doctor`, man -w, the bash
# completion; then dpkg -P, and the file lists of /usr /etc /opt /var/lib before the
# install and after the purge must be equal. Needs docker, docker-registry, htpasswd
# and setpriv: scripts/test.sh installs htpasswd and unpacks the first two privately
# into target/test-tools/root (or $LOCKBOX_TEST_TOOLS), which this script looks in too.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n==== %s ====\n' "$*"; }
fail() { echo "package smoke: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
# The tools scripts/test.sh unpacked privately, after the system's own.
tools="${LOCKBOX_TEST_TOOLS:-$PWD/target/test-tools/root}"
tools_path="$tools/usr/bin:$tools/usr/sbin"
export PATH="$PATH:$tools_path"
for tool in docker docker-registry htpasswd setpriv; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done
# Where scripts/package.sh put it: cargo's target directory (CARGO_TARGET_DIR when set).
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
debs=("$target_dir"/debian/docker-credential-lockbox_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || fail "want exactly one .deb in $target_dir/debian/: ${debs[*]}"
deb="${debs[0]}"
# bash runs the completions only with bash-completion; the package says so.
[ "$(dpkg-deb -f "$deb" Recommends)" = bash-completion ] || fail "the package does not recommend bash-completion"
dpkg-query -W docker-credential-lockbox >/dev/null 2>&1 && fail "the package is already installed"

user=lockbox-smoke
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
home="$(getent passwd "$user" | cut -d: -f6)"
uid="$(id -u "$user")"
gid="$(id -g "$user")"
rm -rf "$home/.docker" "$home/keys" # a previous run's vault and keys
# The user's own clean environment: no DOCKER_*, LOCKBOX_* or CI variables of ours.
as_user() {
  setpriv --reuid="$uid" --regid="$gid" --init-groups \
    env -i HOME="$home" USER="$user" PATH="/usr/local/bin:/usr/bin:/bin:$tools_path" \
    DOCKER_HOST="unix://$home/no-daemon.sock" "$@"
}

snapshot() { # every path dpkg could leave behind, minus dpkg's and apt's own state
  find /usr /etc /opt /var/lib -xdev \
    \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf \) -prune -o -print | sort
}
work="$(mktemp -d /tmp/lockbox-smoke.XXXXXX)"
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
snapshot >"$work/before"

section "dpkg -i $deb"
dpkg -i "$deb"
dpkg -L docker-credential-lockbox | sort >"$work/listed"
for f in /usr/bin/docker-credential-lockbox /usr/bin/lockbox \
  /usr/share/man/man1/docker-credential-lockbox.1.gz /usr/share/man/man1/lockbox.1.gz \
  /usr/share/man/man1/docker-credential-lockbox-doctor.1.gz \
  /usr/share/bash-completion/completions/docker-credential-lockbox \
  /usr/share/bash-completion/completions/lockbox \
  /usr/share/zsh/vendor-completions/_docker-credential-lockbox \
  /usr/share/fish/vendor_completions.d/docker-credential-lockbox.fish \
  /usr/share/doc/docker-credential-lockbox/README.md \
  /usr/share/doc/docker-credential-lockbox/examples/credential.conf; do
  grep -qx "$f" "$work/listed" || fail "$f is not in the package"
done
[ "$(readlink /usr/bin/lockbox)" = docker-credential-lockbox ] || fail "/usr/bin/lockbox is not the symlink"
for unit in contrib/systemd/*.service contrib/systemd/*.socket contrib/systemd/*.timer; do
  [ -f "$unit" ] || continue
  case "$(basename "$unit")" in
    *@.*) dir=/usr/lib/systemd/system ;;
    *) dir=/usr/lib/systemd/user ;;
  esac
  grep -qx "$dir/$(basename "$unit")" "$work/listed" || fail "$unit is not in $dir"
done
# Nothing but the package's own files appeared: no unit enabled, nothing started.
snapshot >"$work/installed"
comm -13 "$work/before" "$work/installed" | grep -vxF -f "$work/listed" \
  | grep -v '^/usr/share/man/index\.' | grep -v '^/var/cache/' >"$work/extra" || true
[ ! -s "$work/extra" ] || { cat "$work/extra" >&2; fail "the install created files the package does not list"; }
file -b /usr/bin/docker-credential-lockbox
ldd /usr/bin/docker-credential-lockbox 2>&1 | grep -Eq 'not a dynamic executable|statically linked' \
  || fail "the packaged binary is not static"

section "the CNCF distribution registry on 127.0.0.1 (htpasswd)"
password="smoke-Registry-pw-$RANDOM$RANDOM"
htpasswd -Bbn smoke "$password" >"$work/htpasswd"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
  secret: smoke-$port
auth:
  htpasswd:
    realm: lockbox-smoke
    path: $work/htpasswd
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  code="$(python3 -c "import urllib.request as u,sys
try: u.urlopen('http://127.0.0.1:$port/v2/', timeout=1)
except u.HTTPError as e: print(e.code); sys.exit()
except Exception: print(0); sys.exit()
print(200)")"
  [ "$code" = 401 ] && break
  sleep 0.1
done
[ "$code" = 401 ] || { cat "$work/registry.log" >&2; fail "the registry did not come up with auth on"; }
registry="127.0.0.1:$port"

section "as $user: init, docker login, get, status, doctor, man"
# The user's secrets live in files it owns (never argv or environment).
install -d -o "$uid" -g "$gid" -m 700 "$home/.docker" "$home/keys"
printf 'smoke passphrase %s\n' "$RANDOM$RANDOM$RANDOM" >"$home/keys/passphrase"
printf '%s' "$password" >"$home/keys/registry"
chown "$uid:$gid" "$home/keys/passphrase" "$home/keys/registry"
chmod 600 "$home/keys/passphrase" "$home/keys/registry"
as_user lockbox init --passphrase-file "$home/keys/passphrase"
as_user lockbox import
as_user sh -c "docker login -u smoke --password-stdin $registry <'$home/keys/registry'"
grep -q '"credsStore": *"lockbox"' "$home/.docker/config.json" || fail "credsStore is not lockbox"
if grep -qF "$password" "$home/.docker/config.json" ||
  grep -qF "$(printf 'smoke:%s' "$password" | base64 -w0)" "$home/.docker/config.json"; then
  fail "the password is in config.json"
fi
as_user lockbox status && fail "status must say locked (exit 3) before unlock" || [ $? -eq 3 ]
as_user lockbox unlock --passphrase-file "$home/keys/passphrase" --timeout 10m
got="$(printf '%s' "$registry" | as_user docker-credential-lockbox get)"
case "$got" in
  *'"Username":"smoke"'*"\"Secret\":\"$password\""*) ;;
  *) fail "get did not return the login" ;;
esac
as_user lockbox status
as_user lockbox doctor
as_user man -w docker-credential-lockbox
as_user man -w lockbox
as_user bash -c 'source /usr/share/bash-completion/completions/lockbox && complete -p lockbox docker-credential-lockbox'
as_user lockbox lock --all

section "dpkg -P leaves no file behind"
kill "$registry_pid"
wait "$registry_pid" 2>/dev/null || true
registry_pid=
dpkg -P docker-credential-lockbox
snapshot >"$work/after"
if ! diff -u "$work/before" "$work/after" | grep -v '^/usr/share/man/index\.' >"$work/diff"; then :; fi
if grep -q '^[-+]/' "$work/diff"; then
  cat "$work/diff" >&2
  fail "the file lists before the install and after the purge differ"
fi
echo "package smoke passed"
