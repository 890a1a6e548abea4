"""Run Keylime's own IMA validation (keylime.ima.ima.process_measurement_list) on test
cases and print, per case and round, the verdict, the failure events of every entry and
the list-level events, as JSON. Used by attest_keylime.rs (differential test) and by
bench/attest-validate.sh (timing).

Usage: python attest_keylime.py CASES.json          -> results JSON on stdout
       python attest_keylime.py --bench POLICY LIST PCRHEX ROUNDS
       python attest_keylime.py --create ARGS...     -> keylime-policy create runtime ARGS
"""

import json
import logging
import sys
import time
import types

# keylime.signing imports gpg, which only PGP-signed policies need.
sys.modules.setdefault("gpg", types.ModuleType("gpg"))
logging.disable(logging.CRITICAL)

from keylime.agentstates import AgentAttestState  # noqa: E402
from keylime.common.algorithms import Hash  # noqa: E402
from keylime.ima import ast, ima  # noqa: E402
from keylime.ima.file_signatures import ImaKeyring, ImaKeyrings  # noqa: E402

RECORDS = []
_orig_init = ast.Entry.__init__
_orig_invalid = ast.Entry.invalid


def _init(self, data, *a, **k):
    RECORDS.append({"parsed": False, "events": []})
    _orig_init(self, data, *a, **k)
    RECORDS[-1]["parsed"] = True


def _invalid(self):
    f = _orig_invalid(self)
    RECORDS[-1]["events"] = sorted({e.event_id.rsplit(".", 1)[1] for e in f.events})
    return f


def run_round(policy, lines, pcr, bank, state):
    del RECORDS[:]
    keyrings = state.get_ima_keyrings() if state is not None else ImaKeyrings()
    keyrings.set_tenant_keyring(ImaKeyring.from_string(policy.get("verification-keys", "")))
    running, failure = ima.process_measurement_list(
        state, lines, json.loads(json.dumps(policy)), pcrval=pcr, ima_keyrings=keyrings, hash_alg=Hash(bank)
    )
    entries = []
    for r in RECORDS:
        entries.append(r["events"] if r["parsed"] else ["entry"])
    ids = [e.event_id.rsplit(".", 1)[1] for e in failure.events]
    glob = sorted({i for i in ids if i in ("pcr_mismatch", "quote_progress")})
    return {
        "attested": not failure,
        "entries": entries,
        "global": glob,
        "running": running,
        "next_entry": state.get_next_ima_ml_entry() if state is not None else None,
    }


def main():
    ast.Entry.__init__ = _init
    ast.Entry.invalid = _invalid
    cases = json.load(open(sys.argv[1]))
    out = []
    for case in cases:
        policy = json.load(open(case["policy"]))
        state = AgentAttestState("vigil") if case.get("stateful") else None
        rounds = []
        for rnd in case["rounds"]:
            # As the verifier gets it from the agent: the file's text, no newline
            # translation (a '\r' stays data).
            lines = open(rnd["list"], newline="").read().split("\n")
            if state is not None:
                start = state.get_next_ima_ml_entry()
                if start == 0:
                    state.reset_ima_attestation()
                lines = lines[start:]
            rounds.append(run_round(policy, lines, rnd.get("pcr"), rnd.get("bank", "sha1"), state))
        out.append(rounds)
    json.dump(out, sys.stdout)


def bench():
    policy = json.load(open(sys.argv[2]))
    pcr = sys.argv[4]
    rounds = int(sys.argv[5])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        # End to end: read and parse the policy and the list, then validate.
        with open(sys.argv[2], "rb") as f:
            policy = json.loads(f.read())
        with open(sys.argv[3]) as f:
            lines = f.read().split("\n")
        _, failure = ima.process_measurement_list(
            None, lines, policy, pcrval=pcr, ima_keyrings=ImaKeyrings(), hash_alg=Hash.SHA1
        )
        times.append(time.perf_counter() - t0)
        if failure:
            print("keylime: list NOT attested", file=sys.stderr)
            sys.exit(1)
    print(json.dumps(times))


def create():
    # keylime-policy's entry point also imports the measured-boot tools (tpm2-tools);
    # build only its "create runtime" parser.
    import argparse

    from keylime.policy import create_runtime_policy

    parser = argparse.ArgumentParser()
    create_runtime_policy.get_arg_parser(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["runtime"] + sys.argv[2:])
    sys.exit(0 if args.func(args) is not None else 1)


if __name__ == "__main__":
    if sys.argv[1] == "--bench":
        bench()
    elif sys.argv[1] == "--create":
        create()
    else:
        main()
