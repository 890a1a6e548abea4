//! Keylime's own fixtures (`shared/testdata/keylime/`): its complete runtime policy and
//! the policies of its generator tests.

use vigil_attest::policy::{DigestMap, RuntimePolicy};
use vigil_attest::{Error, Options, Validator};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/keylime"
);

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn runtime_policy_test_json_loads() {
    let p = RuntimePolicy::from_json(&read("runtime-policy-test.json")).unwrap();
    assert_eq!(p.meta.version, 1);
    assert_eq!(p.meta.generator, 2);
    assert_eq!(p.digests.len(), 21);
    assert_eq!(
        p.digests.get("/boot/grub2/i386-pc/tr.mod").unwrap(),
        ["e295d64734757d946dbbf294d72edf62a36ab157"]
    );
    assert_eq!(
        p.keyrings.get(".ima").unwrap(),
        ["a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a"]
    );
    assert_eq!(p.ima.log_hash_alg, "sha1");
    // Usable for validation, as Keylime's verifier uses it in its tests…
    Validator::new(&p, Options::default()).unwrap();
    // …although Keylime's schema (jsonschema) rejects its `sha256:`-prefixed
    // boot_aggregate; the error names that key exactly.
    match p.validate_schema() {
        Err(Error::Schema { key, message }) => {
            assert_eq!(key, r#"digests["boot_aggregate"][0]"#);
            assert!(message.contains("does not match"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Key order on output is Keylime's, whatever the input order (meta here).
    let out = p.to_json();
    assert!(out.starts_with(r#"{"meta": {"version": 1, "generator": 2, "timestamp": "2022-10-24 21:46:47.978595"}, "release": 0, "digests": {"boot_aggregate": "#));
    let again = RuntimePolicy::from_json(out.as_bytes()).unwrap();
    assert_eq!(again, p);
}

#[test]
fn generator_policies_load_and_validate() {
    for alg in ["sha1", "sha256", "sha384", "sha512", "sm3_256"] {
        let text = read(&format!("create-runtime-policy/policy-{alg}"));
        let p = RuntimePolicy::from_json(&text).unwrap();
        p.validate_schema().unwrap();
        assert_eq!(p.meta.generator, 3);
        // Byte-identical re-serialisation: Keylime's json.dumps layout.
        assert_eq!(p.to_json().as_bytes(), text.trim_ascii_end(), "{alg}");
    }
    // 62 hex digits fit no algorithm but still match the schema's {40,128} pattern.
    let p = RuntimePolicy::from_json(&read("create-runtime-policy/policy-unknown")).unwrap();
    p.validate_schema().unwrap();
}

#[test]
fn allowlists_read_like_keylime() {
    for alg in ["sha1", "sha256", "sha384", "sha512", "sm3_256", "unknown"] {
        let text =
            String::from_utf8(read(&format!("create-runtime-policy/allowlist-{alg}"))).unwrap();
        let mut m = DigestMap::new();
        let n = vigil_attest::policy::read_allowlist(&text, "allowlist", &mut m);
        if alg == "unknown" {
            // Its 32-digit digest is refused by Keylime's schema (and algorithm guess).
            let e = n.unwrap_err().to_string();
            assert!(e.starts_with("allowlist: line 1: "), "{e}");
            continue;
        }
        assert_eq!(n.unwrap(), 1);
        let want = text.split_whitespace().next().unwrap();
        assert_eq!(m.get("data").unwrap(), [want]);
    }
}
