"""Generate a measurement list of N ima-ng entries (ASCII, as a Keylime agent sends it)
and a runtime policy with N paths for bench/attest-validate.sh. Prints the SHA-1 PCR 10
value of the list. Deterministic (digests derived from the entry number)."""
import hashlib
import json
import struct
import sys

n = int(sys.argv[1])
list_path, policy_path = sys.argv[2], sys.argv[3]
pcr = b"\0" * 20
digests = {}
lines = []


def entry(path, digest):
    global pcr
    d = b"sha256:\0" + digest
    name = path.encode() + b"\0"
    data = struct.pack("<I", len(d)) + d + struct.pack("<I", len(name)) + name
    th = hashlib.sha1(data).digest()
    pcr = hashlib.sha1(pcr + th).digest()
    lines.append(f"10 {th.hex()} ima-ng sha256:{digest.hex()} {path}")


entry("boot_aggregate", hashlib.sha256(b"boot").digest())
digests["boot_aggregate"] = [hashlib.sha256(b"boot").hexdigest()]
for i in range(1, n):
    path = f"/usr/lib/pkg{i % 997}/lib{i}.so.{i % 7}"
    digest = hashlib.sha256(str(i).encode()).digest()
    entry(path, digest)
    digests[path] = [digest.hex(), hashlib.sha256(b"old" + str(i).encode()).hexdigest()]
policy = {
    "meta": {"version": 1, "generator": 3, "timestamp": "2026-01-01 00:00:00.000000"},
    "release": 0,
    "digests": digests,
    "excludes": ["/tmp/.*", "/var/log/.*", "/proc/.*"],
    "keyrings": {},
    "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
    "ima-buf": {},
    "verification-keys": "",
}
with open(list_path, "w") as f:
    f.write("\n".join(lines) + "\n")
with open(policy_path, "w") as f:
    json.dump(policy, f)
print(pcr.hex())
