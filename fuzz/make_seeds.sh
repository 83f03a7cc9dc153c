#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/seeds/<target>/ (committed; fuzz/corpus is not).
# Vaults are made by the real binary, so the seeds are exactly what it writes; every key
# here is a throwaway made for the seeds and opens nothing else.
# Usage: bash fuzz/make_seeds.sh   (from anywhere; needs age-keygen and ssh-keygen)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="$PWD/target/debug/docker-credential-lockbox"
seeds="$PWD/fuzz/seeds"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LOCKBOX_ARGON2_PARAMS=64,1,1 # seeds, not security: keep init instant

# regress_* seeds are crash inputs the targets once found: kept, never regenerated.
mkdir -p "$seeds"
find "$seeds" -type f ! -name 'regress_*' -delete
mkdir -p "$seeds"/{vault_parse,store_request,server_url,identity_parse,entry_plaintext,kubelet_request,openbao_response}

# --- kubelet_request: the golden requests, and glob pattern\0name pairs ---
cp tests/golden/kubelet/*.request.json "$seeds/kubelet_request/"
printf '*.k8s.*\0prefix.k8s.io' >"$seeds/kubelet_request/glob"
printf '[a-c\\]]x*\0bx' >"$seeds/kubelet_request/glob_class"

# --- identities (also the identity_parse seeds) ---
age-keygen -o "$tmp/age.txt" 2>/dev/null
age_pub=$(age-keygen -y "$tmp/age.txt")
age-keygen -o "$tmp/age2.txt" 2>/dev/null
ssh-keygen -q -t ed25519 -N '' -C 'seed@host' -f "$tmp/ed25519"
ssh-keygen -q -t rsa -b 2048 -N '' -C 'seed-rsa' -f "$tmp/rsa"
ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -f "$tmp/rsa_pem"
ssh-keygen -q -t ed25519 -N 'pw' -f "$tmp/ed25519_enc"
ssh-keygen -q -t ecdsa -N '' -f "$tmp/ecdsa"
printf 'pw\n' >"$tmp/pass"

cp "$tmp/age.txt" "$seeds/identity_parse/age_identity_file"
cat "$tmp/age.txt" "$tmp/age2.txt" >"$seeds/identity_parse/two_age_identities"
grep '^AGE-SECRET-KEY-1' "$tmp/age.txt" | tr -d '\n' >"$seeds/identity_parse/age_bare_no_newline"
cp "$tmp/ed25519" "$seeds/identity_parse/ssh_ed25519_openssh"
cp "$tmp/rsa" "$seeds/identity_parse/ssh_rsa_openssh"
cp "$tmp/rsa_pem" "$seeds/identity_parse/ssh_rsa_pem"
cp "$tmp/ed25519_enc" "$seeds/identity_parse/fail_ssh_ed25519_encrypted"
cp "$tmp/ecdsa" "$seeds/identity_parse/fail_ssh_ecdsa_unsupported"
printf '# comment only\n\n' >"$seeds/identity_parse/fail_comments_only"
# A plugin identity line (the test plugin's name; parsing never runs a plugin), and
# `age -p` identity files, binary and armored: age asks for the passphrase on a
# terminal, so it runs on a pty (script); with no passphrase source they must fail.
printf '# a test-plugin identity (tests/plugin)\nAGE-PLUGIN-LOCKBOXTEST-1Q8WA3759JDV38U7GJYHVUH8JKGE9DW8XLCZPQ9C46LHG8GWFE6GZ7HZ9SHT\n' \
  >"$seeds/identity_parse/plugin_identity"
for armor in "" -a; do
  name=$([ -z "$armor" ] && echo binary || echo armored)
  (sleep 1; echo seedpass; sleep 1; echo seedpass; sleep 1) |
    SHELL=/bin/sh script -qec "age -p $armor -o '$seeds/identity_parse/fail_age_p_$name' '$tmp/age.txt'" /dev/null >/dev/null
done

# --- vaults ---
vault() { # name, init args...
  local name=$1
  shift
  local dir="$tmp/v-$name"
  mkdir -p "$dir"
  DOCKER_CONFIG="$dir" "$bin" init "$@" >/dev/null
}
store() { # name, server, user, secret
  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$2" "$3" "$4" |
    DOCKER_CONFIG="$tmp/v-$1" "$bin" store
}
vault passphrase_empty --passphrase-file "$tmp/pass"
vault age_hub --recipient "$age_pub"
store age_hub https://index.docker.io/v1/ bob hunter2
store age_hub https://index.docker.io/v1/access-token '<token>' 'eyJhbGciOi.token'
store age_hub ghcr.io/org/repo 'ci-bot' 'ghp_0123456789'
vault all_slots --passphrase-file "$tmp/pass" --recipient "$age_pub" \
  --recipient "$(cat "$tmp/ed25519.pub")" --recipient "$(cat "$tmp/rsa.pub")"
store all_slots 'registry.example.com:5000' 'ü<&>\"\\' 'se\"cret\n\u2028'
store all_slots 'http://localhost:80/' 'x' ''
for i in $(seq 1 10); do store all_slots "registry$i.example.com" "user$i" "secret-$i"; done
# Entry metadata (format version 3, FORMAT.md "Entry metadata"): a JWT's exp learned at
# store, a date set by hand, a Harbor rotation provider (its MAC made with the key).
vault metadata --recipient "$age_pub"
jwt_payload=$(printf '{"sub":"ci","exp":1801353600}' | base64 -w0 | tr '+/' '-_' | tr -d '=')
store metadata jwt.example ci "eyJhbGciOiJSUzI1NiJ9.$jwt_payload.c2ln"
store metadata harbor.example 'robot$ci' 'Secret123'
DOCKER_CONFIG="$tmp/v-metadata" "$bin" expiry set harbor.example 2027-01-31 >/dev/null
DOCKER_CONFIG="$tmp/v-metadata" LOCKBOX_IDENTITY_FILE="$tmp/age.txt" "$bin" expiry set harbor.example \
  --rotate harbor-robot --robot-id 3 --api https://harbor.example >/dev/null
for v in passphrase_empty age_hub all_slots metadata; do
  cp "$tmp/v-$v/lockbox/vault.json" "$seeds/vault_parse/$v.json"
done
# The same vault written compactly: parse accepts it, to_bytes makes it pretty.
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), separators=(",", ":"))' \
  "$seeds/vault_parse/age_hub.json" "$seeds/vault_parse/age_hub_compact.json"
printf '{"lockbox": 4, "future": true}\n' >"$seeds/vault_parse/fail_newer_version.json"
# What the parser refuses since it counts and reads objects only (FORMAT.md "Strictness"),
# each made from a vault above by one change.
python3 - "$seeds/vault_parse" <<'PY'
import json, sys
d = sys.argv[1]
hub = json.load(open(f"{d}/age_hub.json"))
pw = json.load(open(f"{d}/passphrase_empty.json"))
def put(name, text):
    open(f"{d}/{name}", "w").write(text)
key = "https://index.docker.io/v1/"
e = hub["entries"][key]
v = json.loads(json.dumps(hub)); v["entries"][key] = [e["username"], e["secret"]]
put("fail_array_entry.json", json.dumps(v))
put("fail_array_top_level.json", json.dumps([hub[k] for k in ("lockbox", "public_key", "slots", "slots_mac", "entries")]))
s = pw["slots"][0]
v = json.loads(json.dumps(pw)); v["slots"][0] = [s[k] for k in s]
put("fail_array_slot.json", json.dumps(v))
def doc(entries, extra=""):  # the vault's text with `entries` (text) spliced in
    top = ",".join(json.dumps(k) + ":" + json.dumps(hub[k]) for k in ("public_key", "slots", "slots_mac"))
    return '{"lockbox":1,' + extra + top + ',"entries":' + entries + "}\n"
one = json.dumps(key) + ":" + json.dumps(e)
put("fail_duplicate_entry.json", doc("{" + one + "," + one + "}"))
put("fail_duplicate_entry_escaped.json", doc("{" + one + "," + one.replace("https:", "\\u0068ttps:", 1) + "}"))
put("fail_duplicate_member.json", doc("{" + one + "}", '"lockbox":1,'))
v = json.loads(json.dumps(pw)); v["slots"] = [s, s]
put("fail_two_passphrase_slots.json", json.dumps(v))
v = json.loads(json.dumps(pw)); v["slots"] = [dict(s, m_cost_kib=1 << 20, t_cost=2)] * 62
put("fail_62_passphrase_slots_1gib.json", json.dumps(v))
v = json.loads(json.dumps(pw)); v["slots"][0] = dict(s, **{f"x{i}": i for i in range(16)})
put("fail_too_many_slot_members.json", json.dumps(v))
# An OpenBao slot (format version 2, FORMAT.md "OpenBao slot"): the parser checks its
# shape and names; the ciphertext's server is not needed to parse.
ob = {"type": "openbao", "label": "hosts", "mount": "transit", "key": "hosts",
      "ciphertext": "vault:v1:" + "QUJD" * 20}
v = json.loads(json.dumps(hub)); v["lockbox"] = 2; v["slots"].append(ob)
put("openbao_slot.json", json.dumps(v))
v["lockbox"] = 1
put("fail_openbao_slot_in_version_1.json", json.dumps(v))
for name, change in [("addr", {"addr": "https://attacker.example"}), ("sys_mount", {"mount": "sys"}),
                     ("dotdot_key", {"key": ".."}), ("plain_ciphertext", {"ciphertext": "QUJD"})]:
    v = json.loads(json.dumps(hub)); v["lockbox"] = 2; v["slots"].append(dict(ob, **change))
    put(f"fail_openbao_{name}.json", json.dumps(v))
# Plugin and tag recipients in age slots (format version 2, FORMAT.md "Age slot"): the
# parser checks the recipient parses and the version; it never runs a plugin. The
# wrapped key is the hub slot's (nothing checks it is encrypted to the recipient).
PLUGIN = "age1lockboxtest1q8wa3759jdv38u7gjyhvuh8jkge9dw8xlczpq9c46lhg8gwfe6gz7lnqzd3"
TAG = "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e"
age_slot = hub["slots"][0]
for name, r in [("plugin", PLUGIN), ("tag", TAG)]:
    v = json.loads(json.dumps(hub)); v["lockbox"] = 2
    v["slots"].append(dict(age_slot, label="hw", recipient=r))
    put(f"{name}_slot.json", json.dumps(v))
    v["lockbox"] = 1
    put(f"fail_{name}_slot_in_version_1.json", json.dumps(v))
# Padded: the parser trims a recipient, so the version rule must see through it too.
v = json.loads(json.dumps(hub))
v["slots"].append(dict(age_slot, label="hw", recipient=" " + PLUGIN + "\t"))
put("fail_plugin_slot_in_version_1_padded.json", json.dumps(v))
for name, r in [("checksum", PLUGIN[:-1] + "4"), ("name", PLUGIN.replace("lockboxtest", "lock/boxtest")),
                ("tag_point", "age1tag1" + "q" * 59)]:
    v = json.loads(json.dumps(hub)); v["lockbox"] = 2
    v["slots"].append(dict(age_slot, label="hw", recipient=r))
    put(f"fail_plugin_recipient_{name}.json", json.dumps(v))
# Entry metadata: refused in versions 1 and 2, bounded, its members known.
md = json.load(open(f"{d}/metadata.json"))
def meta_seed(name, change):
    v = json.loads(json.dumps(md)); change(v["entries"]["harbor.example"], v)
    put(f"fail_metadata_{name}.json", json.dumps(v))
meta_seed("in_version_2", lambda e, v: v.update(lockbox=2))
meta_seed("in_version_1", lambda e, v: v.update(lockbox=1))
meta_seed("expires_after_9999", lambda e, v: e.update(expires_at=253402300800))
meta_seed("expires_negative", lambda e, v: e.update(expires_at=-1))
meta_seed("unknown_kind", lambda e, v: e["rotate"].update(kind="github"))
meta_seed("plain_http_api", lambda e, v: e["rotate"].update(api="http://harbor.example"))
meta_seed("robot_id_zero", lambda e, v: e["rotate"].update(robot_id=0))
meta_seed("short_mac", lambda e, v: e["rotate"].update(mac="QUJD"))
meta_seed("unknown_member", lambda e, v: e.update(expiry=1))
meta_seed("pending_not_base64", lambda e, v: e.update(pending="!!!!"))
# Escapes in keys and members are read (as Cow strings), not refused.
put("escaped_keys.json", doc("{" + one.replace(json.dumps(key), '"\\u0068ttps:\\/\\/index.docker.io\\/v1\\/"', 1) + "}"))
PY

# --- store payloads ---
s="$seeds/store_request"
printf '{"ServerURL":"https://index.docker.io/v1/","Username":"bob","Secret":"hunter2"}' >"$s/docker_login"
printf '{"ServerURL":"https://index.docker.io/v1/access-token","Username":"<token>","Secret":"eyJ"}\n' >"$s/identity_token"
printf '{\n  "serverurl": "h",\n  "USERNAME": "u", "x": [1, {"y": null}], "Secret": "s"} trailing' >"$s/go_case_insensitive_trailing"
printf '{"ServerURL":"ghcr.io","Username":"u","Secret":null}' >"$s/null_secret"
printf '{"ServerURL":"h","Username":"\\u00fc\\ud83d\\ude00","Secret":"\\"\\\\\\n"}' >"$s/escapes"
printf '{"ServerURL":"","Username":"u","Secret":"s"}' >"$s/fail_empty_server"
printf '{"ServerURL":"h","Secret":"s"}' >"$s/fail_no_username"
printf '{"ServerURL":1}' >"$s/fail_wrong_type"
printf '\xff{"ServerURL":"h\xfe","Username":"u","Secret":"s"}' >"$s/fail_invalid_utf8"

# --- server URLs: first line the request, the rest the vault's keys ---
u="$seeds/server_url"
printf 'docker.io\nhttps://index.docker.io/v1/\nhttps://index.docker.io/v1/access-token\nregistry-1.docker.io' >"$u/hub_spellings"
printf 'HTTPS://Registry.Example.com:443/\nhttp://registry.example.com\nregistry.example.com:5000\nregistry.example.com/org' >"$u/case_port_slash"
printf 'ghcr.io/org/repo\nghcr.io\nghcr.io/org\nghcr.io/org/repo/' >"$u/paths_never_collapse"
printf '  localhost:5000\r\n' >"$u/get_stdin_crlf"
printf 'https://https://host//\nhost' >"$u/odd_schemes"
# Once not a fixed point of normalize (`https::443//h` became `https://h`); the request
# line is accepted, so it is a named seed rather than a regress_* one (those are refused).
printf 'docker.io\nhttps::443//ir//docker.io/v1/https://iregistryker.io\ntry-1.docker.io' >"$u/port_leaves_scheme"

# --- entry plaintexts: [server len][user len] server user plaintext ---
python3 - "$seeds/entry_plaintext" <<'PY'
import struct, sys
out = sys.argv[1]
MAGIC = b"lockbox-entry-v1\0"
def plain(s, u, secret):
    return MAGIC + struct.pack(">I", len(s)) + s + struct.pack(">I", len(u)) + u + secret
def seed(name, s, u, p):
    open(f"{out}/{name}", "wb").write(bytes([len(s), len(u)]) + s + u + p)
hub, bob = b"https://index.docker.io/v1/", b"bob"
seed("bound", hub, bob, plain(hub, bob, b"hunter2"))
seed("empty_secret", b"h", b"u", plain(b"h", b"u", b""))
seed("unicode", "r\u00fc.io".encode(), b"<token>", plain("r\u00fc.io".encode(), b"<token>", "\u2028\U0001F600".encode()))
seed("fail_other_server", b"other", bob, plain(hub, bob, b"hunter2"))
seed("fail_swapped", bob, hub, plain(hub, bob, b"x"))
seed("fail_long_length", b"h", b"u", MAGIC + b"\xff\xff\xff\xff" + b"h")
seed("fail_not_utf8", b"h", b"u", plain(b"h", b"u", b"\xff\xfe"))
PY

# --- OpenBao transit answers: [status hi][status lo] body, as `bao server -dev` 2.7 sends ---
python3 - "$seeds/openbao_response" <<'PY'
import base64, struct, sys
out = sys.argv[1]
def seed(name, status, body):
    open(f"{out}/{name}", "wb").write(struct.pack(">H", status) + body.encode())
env = '{"request_id":"929aaba6-e920-d5da-3295-444a80d3da7d","lease_id":"","renewable":false,"lease_duration":0,"data":%s,"wrap_info":null,"warnings":null,"auth":null}'
seed("encrypt", 200, env % '{"ciphertext":"vault:v1:YhXGuFNc7f4cutZF6XipG5oOswSUCAbM9n5cGir8WQ==","key_version":1}')
seed("decrypt", 200, env % ('{"plaintext":"%s"}' % base64.b64encode(b"AGE-SECRET-KEY-1" + b"Q" * 58).decode()))
seed("key_info", 200, env % '{"allow_plaintext_backup":false,"auto_rotate_period":0,"convergent_encryption":false,"deletion_allowed":false,"derived":true,"exportable":false,"imported_key":false,"kdf":"hkdf_sha256","keys":{"1":1796121054},"latest_version":1,"min_available_version":0,"min_decryption_version":1,"min_encryption_version":0,"name":"k","soft_deleted":false,"supports_decryption":true,"supports_derivation":true,"supports_encryption":true,"supports_signing":false,"type":"aes256-gcm96"}')
seed("fail_denied", 403, '{"errors":["permission denied"]}')
seed("fail_denied_multiline", 403, '{"errors":["1 error occurred:\n\t* permission denied\n\n"]}')
seed("fail_no_route", 404, '{"errors":["no handler for route \"nomount/decrypt/k\". route entry not found."]}')
seed("fail_wrong_context", 400, '{"errors":["cipher: message authentication failed"]}')
seed("fail_sealed", 503, '{"errors":["Vault is sealed"]}')
seed("fail_redirect", 307, 'https://standby.example:8200/v1/transit/decrypt/k')
seed("fail_empty_ok", 204, '')
seed("fail_bad_ciphertext", 200, '{"data":{"ciphertext":"vault:v1:not base64!"}}')
PY

find "$seeds" -type f | sort | sed "s|^$PWD/||"
