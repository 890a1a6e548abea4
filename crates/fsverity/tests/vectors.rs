//! Known-answer vectors (fs-verity reference notes §4): the 72-row table over the
//! `i % 251` pattern, fsverity-utils' own `test_compute_digest` vectors, xfstests
//! generic/575, the "hello world" digests, tree sizes and stored tree blocks.

use sha2::{Digest, Sha256};
use vigil_fsverity::{
    build_tree_from_slice, compute_digest, formatted_digest, Descriptor, Geometry, HashAlg, Params,
    TreeBuilder,
};

fn params(alg: &str, bs: u32, salt: &[u8]) -> Params {
    Params::new_userspace(HashAlg::from_name(alg).unwrap(), bs, salt).unwrap()
}

fn pattern_251(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// fsverity-utils' `test_compute_digest.c` input pattern.
fn pattern_utils(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 11) + (i % 439) + (i % 1103)) as u8)
        .collect()
}

/// §4.3: size, algorithm, block size, salt (hex), digest.
const TABLE_4_3: &[(usize, &str, u32, &str, &str)] = &[
    (0, "sha256", 1024, "", "f2cca36b9b1b7f07814e4284b10121809133e7cb9c4528c8f6846e85fc624ffa"),
    (0, "sha256", 1024, "0011223344556677", "3c5bac01a94d68e5431ae69a8df019fe382768de9894c4d00bbe6305460b1da0"),
    (0, "sha256", 4096, "", "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"),
    (0, "sha256", 4096, "0011223344556677", "b4ce3c310fc705baf79f41eea3ebd066ad206234d4921220b8c75764a5c743ca"),
    (0, "sha256", 65536, "", "37a711c20e34543da6c1507ccc4e04258a1725cc672518b1c6d5d03104fb9e95"),
    (0, "sha256", 65536, "0011223344556677", "e78d803580202bee5d9d2ba6ddf15bc97689eff76199e72a3587c635b49053f2"),
    (0, "sha512", 1024, "", "8451664f25b2ad3f24391280e0c5681cb843389c180baa719f8fdfb063f5ddfa2d1c4433e55e2b6fbb3ba6aa2df8a4f41bf56cb7e0a3b617b6919a42c80f034c"),
    (0, "sha512", 1024, "0011223344556677", "d96e5d9fd6bcab3a02ccca10a751d6320750b42c35cb0e672c24e144dad09381857621aab2a316d982e542e6a9efa246328e74f0ff3ac61d43c99ab207aaff9e"),
    (0, "sha512", 4096, "", "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"),
    (0, "sha512", 4096, "0011223344556677", "9102e01ba4b75ef2e2d329381077a894a7963c36fc5c6b900330dbd1259411caf2bdfd757a589887b204e38714b0a8ffb3f54aa4ac42ac6c524bacc9e844a6db"),
    (0, "sha512", 65536, "", "7c284b11a1224ca91b4be11979caf78e7a60b5d8d57dbfabdbead9ce83ed571aab57333fcf237fc6d7206cce2f8a942341f462d71bce60fc0a45da70d3b0c11a"),
    (0, "sha512", 65536, "0011223344556677", "fba39c60c509c784d7128caa6c009e00f6695925a6361229626dae6b71a55d0639703510ea4add085363e476b5c29ce748adce8a4a578cfa9b80d2ac765299ea"),
    (1, "sha256", 1024, "", "564b7eb7ffda106d78a6b4aa080769012ec9a79ad64e0bff064211de3640fd52"),
    (1, "sha256", 1024, "0011223344556677", "33bb7a20840bf137bdf0e92f0a64d3887313f8d116b983522ad87c9e1429bfbf"),
    (1, "sha256", 4096, "", "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551"),
    (1, "sha256", 4096, "0011223344556677", "aaaa6548cba83a612b5b039cf895d1b42fc9bc87799fae4ba241b4fe311a9bba"),
    (1, "sha256", 65536, "", "2bf8e70e6026186d0dea582792c253f8b1c6e23f578903c680c46ad8d251b556"),
    (1, "sha256", 65536, "0011223344556677", "0defdcf68b1848d28035b25c3a03b2dff81bc5f9b07394285f2f7b6ee8f43363"),
    (1, "sha512", 1024, "", "324609ccb1b57b63a39ff631d480d72657ca9815344bba5933845cd3f3c5f312d0f5813f6a692fec9d8ede2254589f2fbd777604e353becd91dc491d859dd414"),
    (1, "sha512", 1024, "0011223344556677", "08e65678450ffcae5bfe253fa5beac52fad0d5d8c91b7a86fe0619a258b60be29c6cb22b1dd1751bcea8c30c9bdbda22d75ffe14e1e6fde53db485df463a6fe9"),
    (1, "sha512", 4096, "", "9fcf5172b085b1c8f9365eecb37a1869e193a4705654a5829f11939cd01d5c0fd97276be8cd9d49f76cfc8dcfeb80f8128e3548a1de50b56912b9e3fc7bde27b"),
    (1, "sha512", 4096, "0011223344556677", "d653c04a9178024b38caa348acd2e2d9043135ed16c52f5d5f68c028704a4cdcdcc53d47f3f224bd673faf79434d0af2caa47a8e89cbd7b48d273e6d31fecdca"),
    (1, "sha512", 65536, "", "8b4b8483fafc375b73c3396c59ad236fe90f14077f174b3003f772f56aad983a2712500f632c7fdc5613a423118ac444629b7b56f309191332300ee2d3e89cff"),
    (1, "sha512", 65536, "0011223344556677", "37730e9a39020d35d45299b28cc464a1019743502f5649dde582375c136156653fe49980b24e1d7999c18d0b95206fc412d73443b76756fdf5f8cbba7ce3aa4f"),
    (4095, "sha256", 1024, "", "26e3124c201e1cd9182c7d2082889ee85e631a8978581e06990209d806abb2b0"),
    (4095, "sha256", 1024, "0011223344556677", "5c60abc0970a3b8866a627caef8cc1d7ee96eba2f7cbd5fce5c2f23b8370a0d4"),
    (4095, "sha256", 4096, "", "5f4953aad672b0188023d6cd6fbce9d09508eb7dad165b6298ce0086bc1e72db"),
    (4095, "sha256", 4096, "0011223344556677", "3c0e1045fa299cc9160988a26c24d3ee53550cecfe0682080f764b52f21fbecb"),
    (4095, "sha256", 65536, "", "d5864c6f19d137f4b1ed78e28cdfdf066872ff20df3ea9da70693ed77634cd28"),
    (4095, "sha256", 65536, "0011223344556677", "3227366215437f7cb26a2e5414d3d7f1e0476fd3389cbb6bac3f99d8c4886b12"),
    (4095, "sha512", 1024, "", "636f304a919fa374ad249a5bb68fe9f7b026364d4bad0dc5da437afca53a3713dbd22680c8282eecf89ee78f391ddd55f01a59c9ed9424c6d8282475530565a6"),
    (4095, "sha512", 1024, "0011223344556677", "dbe8f3e8470a52cf1d394b496a99ad6a1ee061ed6d19fd1f82184c0565ac230971e2b8ce1619aef1b7e89ae3c49d24bcb70f84bdc2e0254fb0a7f453623983b1"),
    (4095, "sha512", 4096, "", "1f4a9ea21af349cae1d1aa1ce4e560ce6d1e5882d8e2e7696b5afd14191f876e608444553101ba7ff16386a79c7e8739b2905ed14baf8036ebd05e6f09063b2a"),
    (4095, "sha512", 4096, "0011223344556677", "1f49e9fcdcbd74d855c4c0b70ea4cecd6f925965d138d5818890be962092e6ca4189a54f8cb8e49ae2f006eca9c83dc80710624c6cc5ebd50d73ec5a6d0abe8c"),
    (4095, "sha512", 65536, "", "a2e71ccbbede9ff3ec44d4a6526f81834a460f213438d09be66cf02ae70cd5fbdb66828eacca77216381a37a9f8685f88c2a8612c8c79a929c6155dc6156b267"),
    (4095, "sha512", 65536, "0011223344556677", "c896d7ae73568feef3a1330eed765e594cdad53f37c7a4491472a4f47b66a4c7eca8b56a3282c874e0b688465685bb3a2f946c39ae301c9a7c7352338444cc83"),
    (4096, "sha256", 1024, "", "721ccec5089314f4cc88e3444ca30f3e709fdbed34de408eb8fe5e5cc44daee1"),
    (4096, "sha256", 1024, "0011223344556677", "418a9289aed5014220985b5005994bd005fa44f3f658a8e9da382dddd19a0108"),
    (4096, "sha256", 4096, "", "13e9b8848ae484a36acb3f3cac0ceb2f7601e96633d15c92f9bd3dd44e492157"),
    (4096, "sha256", 4096, "0011223344556677", "7560de6d7fa34cbc45c1fe4442c9e0bef7a7733b90d005e4bc2cd5a88b778dac"),
    (4096, "sha256", 65536, "", "e707e3e549d40d1ff43cef29d21919d63f8cefe10aa07ff9e9b04e3064792638"),
    (4096, "sha256", 65536, "0011223344556677", "3a55250b7bed1621c9900130dab913e49810105794f15c1c017cd8cc8d22568d"),
    (4096, "sha512", 1024, "", "e766ca46575c18b3071852397b59d6205ada240110dd74753efd8f4fc94ed3b10b07eee8559ef7b69d9d47d4905b866cec36e9bc8ca40c015439127e267a10a0"),
    (4096, "sha512", 1024, "0011223344556677", "6f1f6e176c1946b14e312c71a1afb5f80c9c1d8429fdd6d3296fa760839005eb00a03df5f6ae42a68062384bf42d4a50d182b5f0e778e48fbfe18e37e1c8f323"),
    (4096, "sha512", 4096, "", "7bf994782b368ecc4e20ce9144701b1a30524d5bbc90987625de22eebc8cf370ec846c1b5e77f9099c6f6cfc0b590359b9ac8083a43e5f7fa5ec05a25dab6e03"),
    (4096, "sha512", 4096, "0011223344556677", "6aac1e4101a97ba9448fac86f02c95cc88572bebbc32d58c90b19c6b7a38588e189005fc7efc127345f711a6dcfc6a1697495717a95c6e671443c750e308cc87"),
    (4096, "sha512", 65536, "", "98e43e9ce91732760a2ca6b9578a558dc85b5fc3428deee419d07c3cb3dab46dba7f7c5809dda334f41f871e543fde4dc52e12f93921ac86761a6d463091be97"),
    (4096, "sha512", 65536, "0011223344556677", "7a859de1a8c9858250770784b95b0095908a3b887f664000f725a3477ca8f27113e0dc67ecefe099feb95e706dffac5a602cac7d7b8b56f19b2d806af0b7c6e7"),
    (4097, "sha256", 1024, "", "76c48a27aa0de17c19da1bcea1c6ce6927027bffead9855a197ebcc9f84d004e"),
    (4097, "sha256", 1024, "0011223344556677", "14ba8cfb2d1fc63b7dd9bff02e1020b179edd916ad015cf7998b001d0e41e152"),
    (4097, "sha256", 4096, "", "b0d074abef4d544404facfab6ba242f6a8ccbde90f1325cd286f3c8aa8d0f8aa"),
    (4097, "sha256", 4096, "0011223344556677", "0854911bb1695ba0f8223023c0b73633ed989736c508207479311b607ac7c87f"),
    (4097, "sha256", 65536, "", "71014a823c04971bc1536b231e71413792a4f418dc8271f689869c2f646d1043"),
    (4097, "sha256", 65536, "0011223344556677", "8f2d59b8aebd205f6fb5c6c91915f0573a23b3bafd22c376c5e95be47c8a52f8"),
    (4097, "sha512", 1024, "", "96c85ef432a8d3f471fe802c2006a88f50f2bf925bf2553e06025d824c0840896626c9b1cce8fb947f70414b48d4d41e14876cafecc010a3cd67310838c16c37"),
    (4097, "sha512", 1024, "0011223344556677", "6f4d7b4a914ba26160770e044dcb83cccba28c320609091e0f5702fa01428c6434dd73b3f3e873d656ca5d4e73a0f809e967bd0f6c47bbd1f03720a1fbeca7e7"),
    (4097, "sha512", 4096, "", "97a1e45daaa69bd7b31908cf835318ba36476984ffa7f4a5913c0187db04ce5f19dc80306f493741d4ad1cdd212b7a9d2691aa3d42563d35471363fbb0fc7f1c"),
    (4097, "sha512", 4096, "0011223344556677", "8891cb5e392eeade96d543a6127cbd00ea2548d77186e6d6293ffc3c3bf2b8da461d1d9369a1ff69ae70a80fdb174bdc4e67c011ec89825c9f9ac855c11da410"),
    (4097, "sha512", 65536, "", "fa49d18d7d78f407d647c5dbf856926804f9db46984b9df4ecf568e250e3b90a1ad7c6324471fd0af7d687f13715f6342fe7d05312821380cf2e82c01caefa47"),
    (4097, "sha512", 65536, "0011223344556677", "a7be84efd0d56bcc31230425bce9522259c51ae51519660836b89b8294391922ad3b202461f360e150021519edaeb843780e1118ebd4aaaba668bad8e538cdad"),
    (1048576, "sha256", 1024, "", "66623e1cad28f91bbd92dc493db9d2f945006459920ef15a63a44319dd1799d4"),
    (1048576, "sha256", 1024, "0011223344556677", "3f14a0c25e87858c42425f5ec7ef39080fe2ce1ed26ddc5937d4c09748cc0327"),
    (1048576, "sha256", 4096, "", "93c995656d665b81c3a87eed032fcf06a8f9cecef51e3f5e5af7fa59fef1d439"),
    (1048576, "sha256", 4096, "0011223344556677", "5c772de1acd106ffc6820ff7c5a8c8e52bd06c4f46b8d19cb179f19dc6458f81"),
    (1048576, "sha256", 65536, "", "10c1c00b2137801ad38ac8bf535d62012203b1719eac8d287eb64045270bb09d"),
    (1048576, "sha256", 65536, "0011223344556677", "236fb2c8e8176cee2f8f1e4eccd924f92894c5644c7c8b38f25aca60698d533d"),
    (1048576, "sha512", 1024, "", "55c8a5148a2301ee0ebbf47818c6a0c54ba8cdd2c796758cda30d3eded57d386a6c901ff3682a910af21c390097c2cebc8d74275a4e23b4344b13668458e5841"),
    (1048576, "sha512", 1024, "0011223344556677", "452cae3824637b63ec31e82fd491b6f88afc9dbdc137f1835d8c27ef6e33f86116e3e36328a077f5cc3504415e6e944a35e113c58ebaf73ae1a0dc0c0e30d18d"),
    (1048576, "sha512", 4096, "", "41af04461110f14941d920ec99e22353f53c2368e05d2855b3a991c5d3efa27008353a81a3c09cfa37e0c967525ec7481991133cf4249c4df70545c91cead118"),
    (1048576, "sha512", 4096, "0011223344556677", "88596c19bd05232188485775ebe7665d0f593609fca4cccc4f632f3278958e5da993bffe0e50aaa48f0803f03b0e1509e33fc3912a780866c0144ee5d67ec0f1"),
    (1048576, "sha512", 65536, "", "fa5c3120dc56b339def9ea24754f124ca003b44774ccdbab62ece273a62177db96136673be9d9be263408bb1a00ab9242e0424b3a7ff944ad74c54fa01d206d2"),
    (1048576, "sha512", 65536, "0011223344556677", "20352008457af14389329913ac243e7e3f86386fcf53b17e36d65c140b73209992bc2be6a82913ce60bd1db8cdc25e9d58a62c58d1ec1434009c3b57e1d8fc13"),
];

#[test]
fn table_4_3_all_72_rows() {
    assert_eq!(TABLE_4_3.len(), 72);
    let mut inputs = std::collections::HashMap::new();
    for &(size, alg, bs, salt, want) in TABLE_4_3 {
        let data = inputs.entry(size).or_insert_with(|| pattern_251(size));
        let p = params(alg, bs, &hex::decode(salt).unwrap());
        let tree = build_tree_from_slice(data, &p);
        assert_eq!(
            tree.digest().to_hex(),
            want,
            "size {size} {alg} bs {bs} salt {salt:?}"
        );
        // The same through the reader path, in odd-sized pieces.
        let mut b = TreeBuilder::new(&p);
        for piece in data.chunks(777) {
            b.update(piece);
        }
        assert_eq!(
            b.finish().digest().to_hex(),
            want,
            "streamed, size {size} {alg} bs {bs}"
        );
    }
}

#[test]
fn sanity_of_generated_inputs() {
    for (n, want) in [
        (
            0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            4097,
            "a16560d668b843fb3be99ace41dbd18471f342bd3255a1d21204b35e43f74436",
        ),
        (
            1048576,
            "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769",
        ),
    ] {
        assert_eq!(hex::encode(Sha256::digest(pattern_251(n))), want);
    }
}

#[test]
fn fsverity_utils_vectors() {
    let cases: &[(usize, &str, u32, &[u8], &str)] = &[
    (1000000, "sha256", 4096, b"", "48df0c462329cd879661bd05b39aa81b05cc16afd27a7196a559da83531d39d9"),
    (100000, "sha256", 4096, b"", "f2096a36c5cdca4fa33ee8852833150bb324992e5417a9d571f1bffff73b9efc"),
    (4096, "sha256", 4096, b"", "6ac39979016e3ddf3d39fff6cb984f7c118acdf1852919f5c100c4b142c1818e"),
    (1, "sha256", 4096, b"", "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551"),
    (0, "sha256", 4096, b"", "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"),
    (1000000, "sha256", 1024, b"", "e9df927c14fcb961d5f51c666d8ae4c14fe4ff98a374c733e898d00c9e74a8e3"),
    (1000000, "sha256", 512, b"", "0393ee3dfd4a28966e2af4e07cfa5b032c30da5bb8e8ef63b9a55bf963262334"),
    (1000000, "sha256", 65536, b"", "f3b6418f26d4d0e74728193bae76f15cb4bb2ce9777448d76bd8138b69ec61c2"),
        (1000000, "sha256", 4096, b"abcd", "917900b0d299454aa304d5debc6f39e4af7b5abe33bdbc568d5d8f1e5c4d8652"),
        (1000000, "sha256", 4096, b"0123456789:;<=>?@ABCDEFGHIJKLMNO", "bc2d70324c048c220a2cb190832140863eb268e680427939e5d467bea5ec5ad9"),
        (1000000, "sha512", 4096, b"abcd", "8425c6d0c94f84ed904c12936845fbb7af9953753789712dcc3be142db3d4b6b47a399ad52aa609256ce29a960bf4bb0e595ec386ca58c06519d546dc5b197bb"),
    ];
    let data = pattern_utils(1000000);
    for &(size, alg, bs, salt, want) in cases {
        let p = params(alg, bs, salt);
        let tree = compute_digest(&data[..size], &p).unwrap();
        assert_eq!(
            tree.digest().to_hex(),
            want,
            "size {size} {alg} bs {bs} salt {salt:?}"
        );
    }
}

#[test]
fn fsverity_utils_default_params_and_metadata() {
    // Defaults are SHA-256 / 4096 / no salt.
    let data = pattern_utils(100000);
    assert_eq!(
        compute_digest(&data[..], &Params::default())
            .unwrap()
            .digest()
            .to_hex(),
        "f2096a36c5cdca4fa33ee8852833150bb324992e5417a9d571f1bffff73b9efc"
    );
    // 100000 zero bytes, SHA-256, 1K blocks: 5 tree blocks, level 0 at offsets
    // 1024..4096, the top block at offset 0.
    let zeros = vec![0u8; 100000];
    let p = params("sha256", 1024, b"");
    let tree = build_tree_from_slice(&zeros, &p);
    assert_eq!(
        tree.digest().to_hex(),
        "09cbbaeed2a04c2da242c10e1568d96f358a16aa1ebe8cf0286120c13c9366d1"
    );
    let t = tree.merkle_tree();
    assert_eq!(t.len(), 5120);
    let h = |o: usize| hex::encode(Sha256::digest(&t[o..o + 1024]));
    for o in [1024, 2048, 3072] {
        assert_eq!(
            h(o),
            "f789baab53859faf36d6d75d1042064294202d6e13e7716f394fba434ccc4986"
        );
    }
    assert_eq!(
        h(4096),
        "00fed03c5d6eab213143f3d96a5ca31c2b89f5684e6c8e07873e5e976517b48f"
    );
    assert_eq!(
        h(0),
        "68c538e11958d65d68b6fe8e9fb8ccabecfd928b01d06344e223ed41ddc4544a"
    );
    let g = Geometry::new(&p, 100000).unwrap();
    assert_eq!(
        (
            g.levels(),
            g.tree_size(),
            g.level_start(0),
            g.level_start(1)
        ),
        (2, 5120, 1, 0)
    );
}

#[test]
fn xfstests_generic_575() {
    let salt = hex::decode("f3c93fa6fb828c0e1587e5714ecf6f56").unwrap();
    let cases: &[(usize, &[u8], &str, &str)] = &[
        (0, b"", "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95", "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"),
        (4096, b"", "babc284ee4ffe7f449377fbf6692715b43aec7bc39c094a95878904d34bac97e", "928922686c4caf32175f5236a7f964e9925d10a74dc6d8344a8bd08b23c228ff5792573987d7895f628f39c4f4ebe39a7367d7aeb16aaa0cd324ac1d53664e61"),
        (65536, b"", "011e3f2b1dc89b75d78cddcc2a1b85cd8a64b2883e5f20f277ae4c0617e0404f", "eab7224ce374a0a4babcb2db25e24836247f38b87806ad9be9e5ba4daac2f5b814fc0cbdfd9f1f8499b3c9a6c1b38fe08974cce49883ab4ccd04462fd2f9507f"),
        (100_000_000, &salt, "9d33cab743468fcbe4edab91a275b30dd543c12dd5e6ce6f2f737f66a1558f06", "f7083a38644880d25539488313e9e5b41a4d431a0e383945129ad2c36e3c1d0f28928a424641bb1363c12b6e770578102566acea73baf1ce8ee15336f5ba2446"),
    ];
    for &(size, salt, want256, want512) in cases {
        for (alg, want) in [("sha256", want256), ("sha512", want512)] {
            let p = params(alg, 4096, salt);
            let got = compute_digest(std::io::repeat(0).take(size as u64), &p).unwrap();
            assert_eq!(got.digest().to_hex(), want, "{size} zeros, {alg}");
        }
    }
}

use std::io::Read;

#[test]
fn hello_world() {
    let tree = build_tree_from_slice(b"hello world", &Params::default());
    assert_eq!(
        hex::encode(tree.root_hash()),
        "4a987f8501cbbc0691a9e2d4156c27f9cdb95e85d7d92efb16608f3020b22fd8"
    );
    assert_eq!(
        tree.digest().to_hex(),
        "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"
    );
    let d = tree.descriptor_bytes();
    assert_eq!(hex::encode(&d[..16]), "01010c00000000000b00000000000000");
    assert_eq!(&d[16..48], tree.root_hash());
    assert!(d[48..].iter().all(|&b| b == 0));
    let p512 = params("sha512", 4096, b"");
    assert!(build_tree_from_slice(b"hello world", &p512)
        .digest()
        .to_hex()
        .starts_with("18430270"));
    assert!(build_tree_from_slice(b"hello world", &p512)
        .digest()
        .to_hex()
        .ends_with("570409"));
}

#[test]
fn formatted_digest_vector() {
    let data = pattern_utils(1000000);
    let tree = compute_digest(&data[..], &params("sha256", 4096, b"abcd")).unwrap();
    let f = tree.digest().formatted();
    assert_eq!(f.len(), 44);
    assert_eq!(
        hex::encode(&f),
        format!(
            "46535665726974790100200{}",
            "0917900b0d299454aa304d5debc6f39e4af7b5abe33bdbc568d5d8f1e5c4d8652"
        )
    );
    assert_eq!(formatted_digest(HashAlg::Sha512, &[7; 64]).len(), 76);
    assert_eq!(
        vigil_fsverity::parse_formatted_digest(&f).unwrap(),
        tree.digest()
    );
}

#[test]
fn tree_sizes() {
    let mib = pattern_251(1 << 20);
    let cases = [
        (1 << 20, "sha256", 1024, 33792),
        (1 << 20, "sha256", 4096, 12288),
        (1 << 20, "sha256", 65536, 65536),
        (1 << 20, "sha512", 1024, 70656),
        (1 << 20, "sha512", 4096, 20480),
        (1 << 20, "sha512", 65536, 65536),
        (4097, "sha256", 1024, 1024),
        (4097, "sha256", 4096, 4096),
        (4097, "sha256", 65536, 0),
        (1, "sha256", 4096, 0),
        (4096, "sha256", 4096, 0),
        (0, "sha256", 4096, 0),
    ];
    for (size, alg, bs, want) in cases {
        let p = params(alg, bs, b"");
        let tree = build_tree_from_slice(&mib[..size], &p);
        assert_eq!(tree.merkle_tree().len(), want, "{size} {alg} {bs}");
        assert_eq!(
            Geometry::new(&p, size as u64).unwrap().tree_size(),
            want as u64
        );
    }
}

#[test]
fn salted_descriptor_layout() {
    // §4.4: 1 MiB, bs 1024, salt 0011223344556677.
    let salt = hex::decode("0011223344556677").unwrap();
    let p = params("sha256", 1024, &salt);
    let tree = build_tree_from_slice(&pattern_251(1 << 20), &p);
    let d = tree.descriptor_bytes();
    assert_eq!(hex::encode(&d[..16]), "01010a08000000000000100000000000");
    assert_eq!(&d[0x50..0x58], &salt[..]);
    assert!(d[0x58..].iter().all(|&b| b == 0));
    assert_eq!(tree.merkle_tree().len(), 33792);
    assert_eq!(Descriptor::parse(&d).unwrap(), *tree.descriptor());
}

#[test]
fn empty_salt_is_unsalted_and_empty_file_hashes_nothing() {
    let a = build_tree_from_slice(b"", &params("sha256", 4096, b""));
    assert!(a.root_hash().iter().all(|&b| b == 0));
    assert_eq!(
        a.digest().to_hex(),
        "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
    );
}

/// A reader that returns short reads and `Interrupted` now and then.
struct Choppy<'a> {
    data: &'a [u8],
    calls: usize,
}

impl std::io::Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = (self.calls * 7919 % 70_000)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn reader_path_handles_short_and_interrupted_reads() {
    let data = pattern_251(9 << 20 | 12345);
    for p in [params("sha256", 4096, b""), params("sha512", 1024, b"salt")] {
        let want = build_tree_from_slice(&data, &p);
        let got = vigil_fsverity::build_tree(
            Choppy {
                data: &data,
                calls: 0,
            },
            &p,
        )
        .unwrap();
        assert_eq!(got.digest(), want.digest());
        assert_eq!(got.merkle_tree(), want.merkle_tree());
    }
}
