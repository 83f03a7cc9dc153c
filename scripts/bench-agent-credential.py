#!/usr/bin/env python3
"""Per-`get` cost through the agent: a key held (`unlock`) against a vault reopened from
the systemd credential at every decrypt (docs/AGENT.md, "Serving a vault from a systemd
credential"), with `LOCKBOX_IDENTITY_FILE` and no agent for reference.

    cargo build --release && python3 scripts/bench-agent-credential.py [ENTRIES] [ROUNDS]

Everything lives in a temp directory under target/ with its own HOME and agent
directories (LOCKBOX_AGENT_DIR): never the user's vault or agent. The three cases run
interleaved, each `get` a new process with stdin from a file and stdout to /dev/null,
timed from spawn to exit. Needs age-keygen. Numbers: docs/PERFORMANCE.md.
"""
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LOCKBOX_BIN", f"{ROOT}/target/release/docker-credential-lockbox")
ENTRIES = int(sys.argv[1]) if len(sys.argv) > 1 else 1
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 300

os.makedirs(f"{ROOT}/target", exist_ok=True)
W = tempfile.mkdtemp(prefix="bench-credential-", dir=f"{ROOT}/target")


def env(agent="agent", **kw):
    e = {"PATH": "/usr/bin:/bin", "HOME": f"{W}/home", "LOCKBOX_AGENT_DIR": f"{W}/{agent}"}
    e.update(kw)
    return e


def lockbox(args, stdin=b"", **kw):
    return subprocess.run([BIN] + args, input=stdin, env=env(**kw), capture_output=True, check=True)


agents = []
try:
    os.makedirs(f"{W}/home/.docker")
    os.makedirs(f"{W}/creds", mode=0o700)
    for d in ("agent", "agent-held"):
        os.makedirs(f"{W}/{d}", mode=0o700)
    subprocess.run(["age-keygen", "-o", f"{W}/id.txt"], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", f"{W}/id.txt"], check=True, capture_output=True, text=True
    ).stdout.strip()
    shutil.copy(f"{W}/id.txt", f"{W}/creds/lockbox-identity")
    lockbox(["init", "--recipient", recipient])
    auths = {
        f"registry{i}.example.com": {
            "auth": base64.b64encode(f"user{i}:ghp_{i:036}".encode()).decode()
        }
        for i in range(ENTRIES)
    }
    with open(f"{W}/home/.docker/config.json", "w") as f:
        json.dump({"auths": auths}, f)
    lockbox(["import"])
    server = f"registry{ENTRIES // 2}.example.com".encode()
    with open(f"{W}/server.txt", "wb") as f:
        f.write(server)

    agents.append(subprocess.Popen([BIN, "agent", "--foreground"], stderr=subprocess.DEVNULL,
                                   env=env(CREDENTIALS_DIRECTORY=f"{W}/creds")))
    agents.append(subprocess.Popen([BIN, "agent", "--foreground"], stderr=subprocess.DEVNULL,
                                   env=env(agent="agent-held")))
    for _ in range(100):  # bounded wait for both sockets
        if all(os.path.exists(f"{W}/{d}/agent.sock") for d in ("agent", "agent-held")):
            break
        time.sleep(0.05)
    lockbox(["unlock", "--identity-file", f"{W}/id.txt"], agent="agent-held")

    cases = {
        "agent, key held (unlock)": env(agent="agent-held"),
        "agent, from the systemd credential": env(),
        "no agent, LOCKBOX_IDENTITY_FILE": env(agent="none", LOCKBOX_IDENTITY_FILE=f"{W}/id.txt"),
    }
    for name, e in cases.items():
        out = subprocess.run([BIN, "get"], input=server, env=e, capture_output=True)
        assert out.returncode == 0 and b"ghp_" in out.stdout, (name, out)
    times = {k: [] for k in cases}
    for _ in range(ROUNDS):
        for name, e in cases.items():
            with open(f"{W}/server.txt", "rb") as stdin:
                t = time.perf_counter()
                subprocess.Popen([BIN, "get"], stdin=stdin, stdout=subprocess.DEVNULL, env=e).wait()
                times[name].append((time.perf_counter() - t) * 1000)
    for name, v in times.items():
        v.sort()
        print(f"{ENTRIES} entries | {name}: median {statistics.median(v):.2f} ms, "
              f"p10 {v[len(v) // 10]:.2f}, p90 {v[9 * len(v) // 10]:.2f} (n={len(v)})")
finally:
    for a in agents:
        a.terminate()
        a.wait()
    shutil.rmtree(W, ignore_errors=True)
