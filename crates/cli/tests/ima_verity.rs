//! fs-verity signatures (`--verity`, type 0x06, v3 over `ima_file_id`): the digest
//! agrees with fsverity-utils, the value with `sign_hash --veritysig`, and the raw
//! signature verifies with openssl over `H(06 ‖ algo ‖ digest)`.

mod ima_support;
use ima_support::*;

fn fsverity_digest(p: &std::path::Path, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["digest", "--compact"];
    args.extend_from_slice(extra);
    args.push(file);
    let o = std::process::Command::new("fsverity")
        .args(&args)
        .current_dir(p)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsverity digest: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

#[test]
fn verity_sign_verify() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), data(3 * 4096 + 100, 9)).unwrap();
    for (name, algo) in [
        ("rsa2048", "sha256"),
        ("p256", "sha256"),
        ("rsa1024", "sha512"),
        ("p384", "sha512"),
    ] {
        let k = key(name);
        let c = cert(name);
        let v = vigil(
            &[
                "ima",
                "sign",
                "--verity",
                "--xattr-user",
                "-a",
                algo,
                "--key",
                &k,
                "f",
            ],
            p,
        );
        ok(&v, "sign --verity");
        let value = get_xattr(&p.join("f"), "user.ima");
        assert_eq!(&value[..3], &[6, 3, if algo == "sha256" { 4 } else { 6 }]);

        // The raw signature is over H(ima_file_id) with the fsverity-utils digest.
        let digest = hex::decode(fsverity_digest(p, "f", &["--hash-alg", algo])).unwrap();
        let mut id = vec![6u8, value[2]];
        id.extend_from_slice(&digest);
        std::fs::write(p.join("id"), &id).unwrap();
        std::fs::write(p.join("sig"), &value[9..]).unwrap();
        openssl_in(p, &["pkey", "-in", &k, "-pubout", "-out", "pub.pem"]);
        openssl_in(
            p,
            &[
                "dgst",
                &format!("-{algo}"),
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
                "id",
            ],
        );

        ok(
            &vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p),
            "verify --verity",
        );
        ok(
            &vevmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p),
            "evmctl front door",
        );
        let out = stdout(&vigil(
            &["ima", "verify", "--xattr-user", "--key", &c, "f"],
            p,
        ));
        assert!(out.contains("fs-verity signature v3"), "{out}");

        if name.starts_with("rsa") {
            // Same bytes as sign_hash --veritysig over `fsverity digest` output.
            let line = format!("{algo}:{} f\n", hex::encode(&digest));
            let s = vevmctl_stdin(
                &["sign_hash", "--veritysig", "--key", &k],
                p,
                line.as_bytes(),
            );
            ok(&s, "sign_hash --veritysig");
            assert_eq!(
                stdout(&s),
                format!("{} {}\n", line.trim_end(), hex::encode(&value))
            );
        }
    }
    // Tampering fails; so does a digest made with other Merkle tree parameters.
    let k = key("p256");
    let c = cert("p256");
    ok(
        &vigil(
            &[
                "ima",
                "sign",
                "--verity",
                "--xattr-user",
                "--block-size",
                "1024",
                "--key",
                &k,
                "f",
            ],
            p,
        ),
        "sign 1K",
    );
    assert_eq!(
        code(&vigil(
            &["ima", "verify", "--xattr-user", "--key", &c, "f"],
            p
        )),
        1
    );
    ok(
        &vigil(
            &[
                "ima",
                "verify",
                "--xattr-user",
                "--block-size",
                "1024",
                "--key",
                &c,
                "f",
            ],
            p,
        ),
        "verify 1K",
    );
    std::fs::write(p.join("f"), b"changed").unwrap();
    let v = vigil(
        &[
            "ima",
            "verify",
            "--xattr-user",
            "--block-size",
            "1024",
            "--key",
            &c,
            "f",
        ],
        p,
    );
    assert_eq!(code(&v), 1);
    assert!(stdout(&v).contains("does not match"), "{}", stdout(&v));
    // fs-verity has no sha1 digests.
    let v = vigil(
        &[
            "ima", "sign", "--verity", "-n", "-a", "sha1", "--key", &k, "f",
        ],
        p,
    );
    assert_eq!(code(&v), 2);
    assert!(all_text(&v).contains("sha256 or sha512"));
}
