"""docker-py against a real Docker daemon, with its credentials from docker-credential-lockbox.

Run by tests/system/e2e.rs with the helper first on PATH as `docker-credential-lockbox`,
DOCKER_CONFIG holding `{"credsStore": "lockbox"}` and a vault that the test's key opens
(LOCKBOX_IDENTITY, or an unlocked agent when LOCKBOX_IDENTITY is not set), the registry
at SERVER with htpasswd auth for USER/PASSWORD, and the image REPO:TAG already in the
daemon (imported by the test, not yet pushed).

    python dockerpy_e2e.py SERVER DOCKER_SOCKET REPO TAG USER PASSWORD

Prints one line per case and a final "N passed, N failed"; exits non-zero on any
failure. Cases run in order (the pull needs the push before it); the last one leaves
SERVER's entry in the vault as it found it.
"""

import json
import os
import sys
import tempfile
import traceback

import docker
import docker.auth
import docker.errors
from docker.credentials import CredentialsNotFound, Store

SERVER, SOCKET, REPO, TAG, USER, PASSWORD = sys.argv[1:7]
IMAGE = f"{REPO}:{TAG}"
EXPECTED = {"ServerAddress": SERVER, "Username": USER, "Password": PASSWORD}
CASES = []
STATE = {}


def case(fn):
    CASES.append(fn)
    return fn


def client():
    # version="auto": the daemon (20.10) speaks API 1.41, older than docker-py's default.
    return docker.DockerClient(base_url=f"unix://{SOCKET}", version="auto", timeout=120)


def has_image(c, ref):
    try:
        c.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def remove(c, ref):
    if has_image(c, ref):
        c.images.remove(ref, force=True)
    assert not has_image(c, ref), f"{ref} is still there"


class Locked:
    """No key for the helper: LOCKBOX_IDENTITY removed for the duration (docker-py
    copies os.environ for every helper call)."""

    def __enter__(self):
        self.identity = os.environ.pop("LOCKBOX_IDENTITY")

    def __exit__(self, *exc):
        os.environ["LOCKBOX_IDENTITY"] = self.identity


@case
def credentials_store_round_trip():
    s = Store("lockbox")
    s.store(server=SERVER, username=USER, secret=PASSWORD)
    assert s.get(SERVER) == {"ServerURL": SERVER, "Username": USER, "Secret": PASSWORD}
    assert s.list()[SERVER] == USER


@case
def resolve_authconfig_with_creds_store():
    cfg = docker.auth.load_config()  # DOCKER_CONFIG/config.json
    assert cfg.creds_store == "lockbox", cfg
    assert cfg.get_credential_store(SERVER) == "lockbox"
    assert docker.auth.resolve_authconfig(cfg, SERVER) == EXPECTED
    # A registry with no entry falls back to the (empty) auths: None, not an error.
    assert docker.auth.resolve_authconfig(cfg, "nowhere.example:5000") is None


@case
def resolve_authconfig_with_cred_helpers():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump({"credHelpers": {SERVER: "lockbox"}}, f)
        cfg = docker.auth.load_config(config_path=path)
        assert cfg.creds_store is None
        assert cfg.get_credential_store(SERVER) == "lockbox"
        assert cfg.get_credential_store("other.example") is None
        assert docker.auth.resolve_authconfig(cfg, SERVER) == EXPECTED
        assert docker.auth.resolve_authconfig(cfg, "other.example") is None
        every = cfg.get_all_credentials()
        assert every[SERVER] == EXPECTED, every


@case
def get_all_credentials_lists_then_gets():
    every = docker.auth.load_config().get_all_credentials()
    assert every[SERVER] == EXPECTED, every
    # docker-py also files every entry under its hostname form.
    assert every[docker.auth.convert_to_hostname(SERVER)] == EXPECTED


@case
def push_through_the_daemon():
    c = client()
    STATE["id"] = c.images.get(IMAGE).id
    events = list(c.images.push(REPO, tag=TAG, stream=True, decode=True))
    # A refused push is not an exception: it is an "error" event in the stream.
    errors = [e for e in events if "error" in e or "errorDetail" in e]
    assert not errors, errors
    assert any("Digest" in e.get("aux", {}) for e in events), events


@case
def pull_through_the_daemon():
    c = client()
    remove(c, IMAGE)
    pulled = c.images.pull(REPO, tag=TAG)
    assert pulled.id == STATE["id"], (pulled.id, STATE["id"])


@case
def locked_pull_is_an_error_not_anonymous():
    if "LOCKBOX_IDENTITY" not in os.environ:
        print("     (key from the agent: the locked case runs in the identity pass)")
        return
    c = client()
    remove(c, IMAGE)
    with Locked():
        try:
            c.images.pull(REPO, tag=TAG)
        except docker.errors.DockerException as e:
            assert "lockbox is locked" in str(e), e
        else:
            raise AssertionError("a locked vault pulled")
    assert not has_image(c, IMAGE)


@case
def without_an_entry_the_daemon_is_refused():
    s = Store("lockbox")
    s.erase(SERVER)
    try:
        try:
            s.get(SERVER)
        except CredentialsNotFound:
            pass
        else:
            raise AssertionError("erase left the entry")
        # Not found falls back to config.json's auths, where `docker login` left only
        # an empty marker for SERVER: no credentials at all, and the registry refuses.
        fallback = docker.auth.resolve_authconfig(docker.auth.load_config(), SERVER)
        assert not fallback, fallback
        c = client()
        remove(c, IMAGE)
        try:
            c.images.pull(REPO, tag=TAG)
        except docker.errors.APIError as e:
            assert "no basic auth credentials" in str(e), e
        else:
            raise AssertionError("an anonymous pull succeeded")
    finally:
        s.store(server=SERVER, username=USER, secret=PASSWORD)
    assert s.get(SERVER)["Secret"] == PASSWORD


def main():
    print(f"docker-py {docker.__version__}, Python {sys.version.split()[0]}")
    passed = failed = 0
    for fn in CASES:
        try:
            fn()
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
