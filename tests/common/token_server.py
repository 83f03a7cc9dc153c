"""Loopback token servers for the sealed sources' tests (tests/keys/sources_mint.rs, and
the end-to-end tests): each checks what the real service checks, and counts.

    python token_server.py --kind gcp|azure|oauth2 --dir DIR [options]

Listens on 127.0.0.1 on a free port, writes the port to DIR/port (atomically, once it
listens), reads its secrets from files in DIR (never argv):

- gcp: DIR/public.pem, the service account's public key. POST /token: the JWT-bearer
  grant; the assertion must verify (RS256) against it with aud = this server's
  /token URL, iss = --client-email, scope = cloud-platform, a kid = --key-id, iat not
  in the future, exp at most an hour after iat and not past. Google's error shapes.
- azure: DIR/client_secret. POST /{tenant}/oauth2/v2.0/token: client credentials
  (client_id, client_secret, scope = management .default); POST /oauth2/exchange:
  grant_type=access_token, service = --registry, tenant, and an access_token this
  server issued (HS256 under its own key, aud management, tid = tenant). The refresh
  token is a JWT whose exp is now + --expires-in.
- gcp and oauth2: DIR/access_token, if it exists, is the access token handed out
  every time (a registry's htpasswd password in an end-to-end test); else a random one.
- oauth2: DIR/refresh_token. POST /token: grant_type=refresh_token, client_id, and the
  refresh token; with --rotate each answer carries a new refresh token and only the
  newest is accepted (written back to DIR/refresh_token).

GET /count answers {"requests": N, "issued": M, "tokens": [...]}: every POST counted,
the tokens issued in order (the tests compare them with what was minted); the same is
in DIR/count.json, rewritten before each answer (readable with --tls too). --delay S
sleeps before each POST's answer (a hanging endpoint). --tls serves HTTPS with
DIR/cert.pem and DIR/key.pem. Stopped by its PID (SIGTERM).
"""

import argparse
import base64
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization

GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GCP_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AZURE_SCOPE = "https://management.azure.com/.default"
MAX_BODY = 64 * 1024


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.requests = 0
        self.tokens = []
        self.server_key = secrets.token_bytes(32)  # azure: signs its own tokens
        d = args.dir
        self.public_key = None
        if args.kind == "gcp":
            with open(os.path.join(d, "public.pem"), "rb") as f:
                self.public_key = serialization.load_pem_public_key(f.read())
        self.client_secret = read(d, "client_secret") if args.kind == "azure" else None
        self.refresh_token = read(d, "refresh_token") if args.kind == "oauth2" else None

    def issue(self, token):
        with self.lock:
            self.tokens.append(token)
            self.save()

    def fixed_token(self):
        """DIR/access_token when it exists: the access token to hand out every time (so
        an end-to-end test can give a registry's htpasswd that password)."""
        path = os.path.join(self.args.dir, "access_token")
        return read(self.args.dir, "access_token") if os.path.exists(path) else None

    def counted(self):
        with self.lock:
            self.requests += 1
            self.save()

    def snapshot(self):
        return {"requests": self.requests, "issued": len(self.tokens), "tokens": self.tokens}

    def save(self):
        """DIR/count.json, rewritten (atomically) before any answer: called under the lock."""
        write_atomic(os.path.join(self.args.dir, "count.json"), json.dumps(self.snapshot()))


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body are two writes: without TCP_NODELAY the body waits for
    # the client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    state: State = None

    def log_message(self, *_):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, description):
        self.answer(status, {"error": code, "error_description": description})

    def do_GET(self):
        s = self.state
        if self.path != "/count":
            return self.error(404, "not_found", "no such path")
        with s.lock:
            self.answer(200, s.snapshot())

    def do_POST(self):
        s = self.state
        s.counted()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.error(413, "invalid_request", "body too large")
        raw = self.rfile.read(length)
        if s.args.delay:
            time.sleep(s.args.delay)
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self.error(400, "invalid_request", "not a form")
        form = {}
        try:
            pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (ValueError, UnicodeDecodeError):
            return self.error(400, "invalid_request", "not a form")
        for k, v in pairs:
            if k in form:
                return self.error(400, "invalid_request", f"{k} given twice")
            form[k] = v
        path = urllib.parse.urlsplit(self.path).path
        kind = s.args.kind
        if kind == "gcp" and path == "/token":
            return self.gcp(form)
        if kind == "azure" and path == f"/{s.args.tenant}/oauth2/v2.0/token":
            return self.azure_token(form)
        if kind == "azure" and path == "/oauth2/exchange":
            return self.azure_exchange(form)
        if kind == "oauth2" and path == "/token":
            return self.oauth2(form)
        return self.error(404, "not_found", f"no such endpoint {path}")

    def base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def gcp(self, form):
        s, a = self.state, self.state.args
        if form.get("grant_type") != GCP_GRANT:
            return self.error(400, "unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                s.public_key,
                algorithms=["RS256"],
                audience=f"{self.base()}/token",
                issuer=a.client_email,
                options={"require": ["exp", "iat", "iss", "aud", "scope"]},
            )
        except jwt.InvalidSignatureError:
            return self.error(400, "invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as e:
            return self.error(400, "invalid_grant", f"Invalid JWT: {type(e).__name__}")
        now = time.time()
        if header.get("kid") != a.key_id:
            return self.error(400, "invalid_grant", "Invalid JWT: unknown kid.")
        if claims["iat"] > now + 60 or claims["exp"] - claims["iat"] > 3600:
            return self.error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
        if claims["scope"] != GCP_SCOPE:
            return self.error(400, "invalid_scope", "Invalid OAuth scope.")
        token = s.fixed_token() or "ya29.test-" + secrets.token_urlsafe(24)
        s.issue(token)
        self.answer(200, {"access_token": token, "expires_in": a.expires_in, "token_type": "Bearer"})

    def azure_token(self, form):
        s, a = self.state, self.state.args
        if form.get("grant_type") != "client_credentials":
            return self.error(400, "unsupported_grant_type", "AADSTS70003: unsupported grant type.")
        if form.get("client_id") != a.client_id:
            return self.error(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
        if not secrets.compare_digest(form.get("client_secret", ""), s.client_secret):
            return self.error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != AZURE_SCOPE:
            return self.error(400, "invalid_scope", "AADSTS70011: The provided value for scope is not valid.")
        now = int(time.time())
        token = jwt.encode(
            {"aud": "https://management.azure.com", "tid": a.tenant, "appid": a.client_id, "iat": now, "exp": now + 3600},
            s.server_key,
            algorithm="HS256",
        )
        self.answer(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})

    def azure_exchange(self, form):
        s, a = self.state, self.state.args
        if form.get("grant_type") != "access_token":
            return self.error(400, "unsupported_grant_type", "grant_type must be access_token")
        if form.get("service") != a.registry:
            return self.error(400, "invalid_request", "wrong service")
        if form.get("tenant") != a.tenant:
            return self.error(400, "invalid_request", "wrong tenant")
        try:
            claims = jwt.decode(form.get("access_token", ""), s.server_key, algorithms=["HS256"], audience="https://management.azure.com")
        except jwt.PyJWTError:
            return self.error(401, "unauthorized", "the access token is not valid")
        if claims.get("tid") != a.tenant:
            return self.error(401, "unauthorized", "the access token is of another tenant")
        now = int(time.time())
        token = jwt.encode(
            {"jti": secrets.token_hex(8), "sub": a.client_id, "iss": "Azure Container Registry", "aud": a.registry, "tenant": a.tenant, "iat": now, "exp": now + a.expires_in},
            secrets.token_bytes(32),
            algorithm="HS256",
        )
        s.issue(token)
        self.answer(200, {"refresh_token": token})

    def oauth2(self, form):
        s, a = self.state, self.state.args
        if form.get("grant_type") != "refresh_token":
            return self.error(400, "unsupported_grant_type", "grant_type must be refresh_token")
        if form.get("client_id") != a.client_id:
            return self.error(401, "invalid_client", "unknown client")
        with s.lock:
            if not secrets.compare_digest(form.get("refresh_token", ""), s.refresh_token):
                return self.error(400, "invalid_grant", "The refresh token is invalid or expired.")
            token = s.fixed_token() or "at-" + secrets.token_urlsafe(24)
            answer = {"access_token": token, "token_type": "Bearer", "expires_in": a.expires_in}
            if a.rotate:
                s.refresh_token = "rt-" + secrets.token_urlsafe(24)
                write_atomic(os.path.join(a.dir, "refresh_token"), s.refresh_token)
                answer["refresh_token"] = s.refresh_token
        s.issue(token)
        self.answer(200, answer)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kind", required=True, choices=["gcp", "azure", "oauth2"])
    p.add_argument("--dir", required=True)
    p.add_argument("--expires-in", type=int, default=3600)
    p.add_argument("--delay", type=float, default=0)
    p.add_argument("--client-email", default="pusher@lockbox-test.iam.gserviceaccount.com")
    p.add_argument("--key-id", default="test-key-1")
    p.add_argument("--client-id", default="lockbox-test-client")
    p.add_argument("--tenant", default="lockbox-test-tenant")
    p.add_argument("--registry", default="lockboxtest.azurecr.io")
    p.add_argument("--rotate", action="store_true")
    p.add_argument("--tls", action="store_true", help="HTTPS with DIR/cert.pem and DIR/key.pem")
    args = p.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(args.dir, "cert.pem"), os.path.join(args.dir, "key.pem"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Handler.state.lock:
        Handler.state.save()
    write_atomic(os.path.join(args.dir, "port"), str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
