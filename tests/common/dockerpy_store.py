"""docker-py's credential store against docker-credential-lockbox.

Run by tests/system/real_clients.rs (`dockerpy_credential_store`) with the helper first on
PATH as `docker-credential-lockbox` and `docker-credential-secretservice`, DOCKER_CONFIG
holding `{"credsStore": "lockbox"}` and a vault, and LOCKBOX_IDENTITY set. Prints one
line per case and a final "N passed, N failed"; exits non-zero on any failure.

The `upstream_*` cases are the scenario of docker-py's
tests/integration/credentials/store_test.py (store+get, get of a missing key, erase,
unicode, list), with the store chosen as it chooses it.
"""

import os
import random
import shutil
import sys
import traceback

import docker
import docker.auth
from docker.credentials import (
    DEFAULT_LINUX_STORE,
    CredentialsNotFound,
    Store,
    StoreError,
)

CASES = []
TMP_KEYS = []


def case(fn):
    CASES.append(fn)
    return fn


def random_servername():
    name = f"pycreds_test_{random.getrandbits(32):x}"
    TMP_KEYS.append(name)
    return name


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError(f"{fn.__name__}{args!r} did not raise {exc.__name__}")


def lockbox():
    return Store("lockbox")


def upstream_store():
    """The store docker-py's own integration tests pick on Linux."""
    if shutil.which(f"docker-credential-{DEFAULT_LINUX_STORE}"):
        store = Store(DEFAULT_LINUX_STORE)
    elif shutil.which("docker-credential-pass"):
        store = Store("pass")
    else:
        raise Exception("No supported docker-credential store in PATH")
    # Never test some other helper by accident.
    ours = os.path.realpath(shutil.which("docker-credential-lockbox"))
    assert os.path.realpath(store.exe) == ours, f"{store.exe} is not lockbox"
    return store


class Locked:
    """LOCKBOX_IDENTITY removed for the duration (docker-py copies os.environ per call)."""

    def __enter__(self):
        self.identity = os.environ.pop("LOCKBOX_IDENTITY")

    def __exit__(self, *exc):
        os.environ["LOCKBOX_IDENTITY"] = self.identity


# --- docker.credentials.Store("lockbox") ---------------------------------------------


@case
def empty_list_is_a_dict():
    # list hands the helper docker-py's own stdin (held open by the test): a helper
    # that read it would hang here.
    assert lockbox().list() == {}


@case
def store_get_list_erase():
    s = lockbox()
    key = random_servername()
    assert s.store(server=key, username="user", secret="pass") == b""
    assert s.get(key) == {"ServerURL": key, "Username": "user", "Secret": "pass"}
    assert s.list()[key] == "user"
    s.erase(key)
    assert key not in s.list()
    raises(CredentialsNotFound, s.get, key)


@case
def get_missing_raises_credentials_not_found():
    raises(CredentialsNotFound, lockbox().get, random_servername())


@case
def erase_missing_succeeds():
    lockbox().erase(random_servername())


@case
def identity_token_round_trips():
    s = lockbox()
    key = "registry.example:5000"
    TMP_KEYS.append(key)
    s.store(server=key, username="<token>", secret="id-token.abc/+=")
    assert s.get(key) == {
        "ServerURL": key,
        "Username": "<token>",
        "Secret": "id-token.abc/+=",
    }
    assert s.list()[key] == "<token>"


@case
def unicode_username_and_secret():
    s = lockbox()
    key = random_servername() + "-ünï"
    TMP_KEYS.append(key)
    s.store(server=key, username="ユーザー", secret="пароль 🔑 \"q\" \\ <&>")
    assert s.get(key) == {
        "ServerURL": key,
        "Username": "ユーザー",
        "Secret": "пароль 🔑 \"q\" \\ <&>",
    }
    assert s.list()[key] == "ユーザー"
    s.erase(key)
    raises(CredentialsNotFound, s.get, key)


@case
def newest_store_wins():
    s = lockbox()
    key = random_servername()
    s.store(server=key, username="old", secret="one")
    s.store(server=key, username="new", secret="two")
    assert s.get(key) == {"ServerURL": key, "Username": "new", "Secret": "two"}


@case
def empty_server_is_a_store_error():
    e = raises(StoreError, lockbox().get, "")
    assert not isinstance(e, CredentialsNotFound), e
    assert "no credentials server URL" in str(e), e


@case
def locked_get_is_an_error_not_a_miss():
    s = lockbox()
    key = random_servername()
    s.store(server=key, username="user", secret="pass")
    with Locked():
        e = raises(StoreError, s.get, key)
        assert not isinstance(e, CredentialsNotFound), e
        assert "locked" in str(e), e
        # store, list and erase need no key.
        other = random_servername()
        s.store(server=other, username="locked-user", secret="x")
        assert s.list()[other] == "locked-user"
        s.erase(other)
        assert other not in s.list()
    assert s.get(key)["Secret"] == "pass"


# --- docker.auth, as docker-py's APIClient resolves credentials -------------------------


def auth_config():
    path = os.path.join(os.environ["DOCKER_CONFIG"], "config.json")
    return docker.auth.load_config(config_path=path)


@case
def auth_resolves_through_creds_store():
    s = lockbox()
    TMP_KEYS.extend(["auth-test.example:5000", "token-test.example"])
    s.store("auth-test.example:5000", "alice", "alice-pw")
    s.store("token-test.example", "<token>", "refresh-me")
    cfg = auth_config()
    assert cfg.creds_store == "lockbox"
    assert cfg.resolve_authconfig("auth-test.example:5000") == {
        "ServerAddress": "auth-test.example:5000",
        "Username": "alice",
        "Password": "alice-pw",
    }
    assert cfg.resolve_authconfig("token-test.example") == {
        "ServerAddress": "token-test.example",
        "IdentityToken": "refresh-me",
    }
    # A miss falls back to the (empty) auths: None, not an error.
    assert cfg.resolve_authconfig("nowhere.example") is None
    every = cfg.get_all_credentials()
    assert every["auth-test.example:5000"]["Password"] == "alice-pw"
    with Locked():
        try:
            auth_config().resolve_authconfig("auth-test.example:5000")
        except docker.errors.DockerException as e:
            assert "locked" in str(e), e
        else:
            raise AssertionError("a locked vault resolved to anonymous access")


# --- docker-py's tests/integration/credentials/store_test.py --------------------------


@case
def upstream_store_and_get():
    store = upstream_store()
    key = random_servername()
    store.store(server=key, username="user", secret="pass")
    data = store.get(key)
    assert data == {"ServerURL": key, "Username": "user", "Secret": "pass"}


@case
def upstream_get_nonexistent():
    raises(CredentialsNotFound, upstream_store().get, random_servername())


@case
def upstream_store_and_erase():
    store = upstream_store()
    key = random_servername()
    store.store(server=key, username="user", secret="pass")
    store.erase(key)
    raises(CredentialsNotFound, store.get, key)


@case
def upstream_unicode_strings():
    store = upstream_store()
    key = random_servername()
    store.store(server=key, username="user", secret="pass")
    data = store.get(key)
    assert data
    store.erase(key)
    raises(CredentialsNotFound, store.get, key)


@case
def upstream_list():
    store = upstream_store()
    names = (random_servername(), random_servername())
    store.store(names[0], username="sakuya", secret="izayoi")
    store.store(names[1], username="reimu", secret="hakurei")
    data = store.list()
    assert names[0] in data
    assert data[names[0]] == "sakuya"
    assert names[1] in data
    assert data[names[1]] == "reimu"


def teardown():
    """As upstream's teardown_method: erase every key, swallowing StoreError."""
    store = lockbox()
    for key in TMP_KEYS:
        try:
            store.erase(key)
        except StoreError:
            pass
    left = set(store.list()) & set(TMP_KEYS)
    assert not left, f"erase left {left}"


def main():
    print(f"docker-py {docker.__version__}, Python {sys.version.split()[0]}")
    passed = failed = 0
    for fn in CASES + [teardown]:
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
