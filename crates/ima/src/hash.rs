//! The kernel's hash-algorithm table (`enum hash_algo`, `hash_algo_name[]`,
//! `hash_digest_size[]`, TPM algorithm ids) and a streaming [`Hasher`] for each entry.
//!
//! Names and ids are written once, here; every other module (xattrs, templates, PCR
//! banks, policies) looks them up through [`HashAlgo`].

use crate::{Error, Result};
use digest::Digest;

macro_rules! hash_algos {
    ($( $variant:ident = $id:literal, $name:literal, $len:literal, $tpm:expr, [$($alias:literal),*]; )*) => {
        /// One entry of the kernel's `enum hash_algo` (include/uapi/linux/hash_info.h).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum HashAlgo { $( $variant = $id, )* }

        impl HashAlgo {
            /// Every algorithm, in id order.
            pub const ALL: &'static [HashAlgo] = &[ $( HashAlgo::$variant, )* ];

            /// The kernel's name (`hash_algo_name[]`), as written in `d-ng` fields and policies.
            pub const fn name(self) -> &'static str {
                match self { $( HashAlgo::$variant => $name, )* }
            }

            /// Digest length in bytes (`hash_digest_size[]`).
            pub const fn digest_len(self) -> usize {
                match self { $( HashAlgo::$variant => $len, )* }
            }

            /// The TPM 2.0 algorithm id of a PCR bank with this algorithm, if TPMs have one.
            pub const fn tpm_alg_id(self) -> Option<u16> {
                match self { $( HashAlgo::$variant => $tpm, )* }
            }

            /// The algorithm with kernel id `id`.
            pub fn from_id(id: u8) -> Result<HashAlgo> {
                match id { $( $id => Ok(HashAlgo::$variant), )* _ => Err(Error::UnknownHashId(id)) }
            }

            /// Look up a name: the kernel's, or an alias used by OpenSSL, evmctl, the TPM
            /// tools or Keylime (`md_gost12_256`, `ripemd160`, `sm3_256`, `sha3_256`…).
            /// Names are case-sensitive, as in the kernel and evmctl.
            pub fn from_name(name: &str) -> Result<HashAlgo> {
                match name {
                    $( $name $(| $alias)* => Ok(HashAlgo::$variant), )*
                    _ => Err(Error::UnknownHashName(name.to_owned())),
                }
            }
        }
    };
}

const TPM_SHA1: u16 = 0x0004;
const TPM_SHA256: u16 = 0x000B;
const TPM_SHA384: u16 = 0x000C;
const TPM_SHA512: u16 = 0x000D;
const TPM_SM3_256: u16 = 0x0012;
const TPM_SHA3_256: u16 = 0x0027;
const TPM_SHA3_384: u16 = 0x0028;
const TPM_SHA3_512: u16 = 0x0029;

hash_algos! {
    Md4 = 0, "md4", 16, None, [];
    Md5 = 1, "md5", 16, None, [];
    Sha1 = 2, "sha1", 20, Some(TPM_SHA1), [];
    Rmd160 = 3, "rmd160", 20, None, ["ripemd160"];
    Sha256 = 4, "sha256", 32, Some(TPM_SHA256), [];
    Sha384 = 5, "sha384", 48, Some(TPM_SHA384), [];
    Sha512 = 6, "sha512", 64, Some(TPM_SHA512), [];
    Sha224 = 7, "sha224", 28, None, [];
    Rmd128 = 8, "rmd128", 16, None, ["ripemd128"];
    Rmd256 = 9, "rmd256", 32, None, ["ripemd256"];
    Rmd320 = 10, "rmd320", 40, None, ["ripemd320"];
    Wp256 = 11, "wp256", 32, None, [];
    Wp384 = 12, "wp384", 48, None, [];
    Wp512 = 13, "wp512", 64, None, ["whirlpool"];
    Tgr128 = 14, "tgr128", 16, None, [];
    Tgr160 = 15, "tgr160", 20, None, [];
    Tgr192 = 16, "tgr192", 24, None, [];
    Sm3 = 17, "sm3", 32, Some(TPM_SM3_256), ["sm3_256", "sm3-256"];
    Streebog256 = 18, "streebog256", 32, None, ["md_gost12_256"];
    Streebog512 = 19, "streebog512", 64, None, ["md_gost12_512"];
    Sha3_256 = 20, "sha3-256", 32, Some(TPM_SHA3_256), ["sha3_256"];
    Sha3_384 = 21, "sha3-384", 48, Some(TPM_SHA3_384), ["sha3_384"];
    Sha3_512 = 22, "sha3-512", 64, Some(TPM_SHA3_512), ["sha3_512"];
}

impl HashAlgo {
    /// The algorithm of a TPM 2.0 PCR bank id.
    pub fn from_tpm_alg_id(id: u16) -> Option<HashAlgo> {
        HashAlgo::ALL
            .iter()
            .copied()
            .find(|a| a.tpm_alg_id() == Some(id))
    }

    /// The name OpenSSL (and so evmctl) uses for the algorithm, where it differs.
    pub const fn openssl_name(self) -> &'static str {
        match self {
            HashAlgo::Rmd160 => "ripemd160",
            HashAlgo::Streebog256 => "md_gost12_256",
            HashAlgo::Streebog512 => "md_gost12_512",
            other => other.name(),
        }
    }

    /// The only algorithm whose digests are `len` bytes long among md5 and sha1,
    /// which is how the kernel and evmctl read a type-0x01 `security.ima` value
    /// and old `d-ng` fields with an empty algorithm name.
    pub const fn from_legacy_len(len: usize) -> Option<HashAlgo> {
        match len {
            16 => Some(HashAlgo::Md5),
            20 => Some(HashAlgo::Sha1),
            _ => None,
        }
    }

    /// Whether [`Hasher::new`] can compute this algorithm.
    pub const fn is_supported(self) -> bool {
        true
    }

    /// Hash `data` in one call.
    pub fn digest(self, data: &[u8]) -> Result<Vec<u8>> {
        let mut h = Hasher::new(self)?;
        h.update(data);
        Ok(h.finalize())
    }
}

impl std::fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HashAlgo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        HashAlgo::from_name(s)
    }
}

/// A streaming hash of any [`HashAlgo`], without boxing.
///
/// Truncated kernel algorithms (`wp256`, `wp384`, `tgr128`, `tgr160`) are the leading
/// bytes of Whirlpool and Tiger, as the kernel's `wp512.c`/`tgr192.c` produce them.
#[derive(Clone)]
pub struct Hasher {
    algo: HashAlgo,
    state: State,
}

#[derive(Clone)]
enum State {
    Md4(md4::Md4),
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Rmd128(ripemd::Ripemd128),
    Rmd160(ripemd::Ripemd160),
    Rmd256(ripemd::Ripemd256),
    Rmd320(ripemd::Ripemd320),
    Whirlpool(whirlpool::Whirlpool),
    Tiger(tiger::Tiger),
    Sm3(sm3::Sm3),
    Streebog256(streebog::Streebog256),
    Streebog512(streebog::Streebog512),
    Sha3_256(sha3::Sha3_256),
    Sha3_384(sha3::Sha3_384),
    Sha3_512(sha3::Sha3_512),
}

macro_rules! each_state {
    ($state:expr, $h:ident => $body:expr) => {
        match $state {
            State::Md4($h) => $body,
            State::Md5($h) => $body,
            State::Sha1($h) => $body,
            State::Sha224($h) => $body,
            State::Sha256($h) => $body,
            State::Sha384($h) => $body,
            State::Sha512($h) => $body,
            State::Rmd128($h) => $body,
            State::Rmd160($h) => $body,
            State::Rmd256($h) => $body,
            State::Rmd320($h) => $body,
            State::Whirlpool($h) => $body,
            State::Tiger($h) => $body,
            State::Sm3($h) => $body,
            State::Streebog256($h) => $body,
            State::Streebog512($h) => $body,
            State::Sha3_256($h) => $body,
            State::Sha3_384($h) => $body,
            State::Sha3_512($h) => $body,
        }
    };
}

impl Hasher {
    /// A fresh hash state for `algo`.
    pub fn new(algo: HashAlgo) -> Result<Hasher> {
        use HashAlgo as A;
        let state = match algo {
            A::Md4 => State::Md4(Default::default()),
            A::Md5 => State::Md5(Default::default()),
            A::Sha1 => State::Sha1(Default::default()),
            A::Sha224 => State::Sha224(Default::default()),
            A::Sha256 => State::Sha256(Default::default()),
            A::Sha384 => State::Sha384(Default::default()),
            A::Sha512 => State::Sha512(Default::default()),
            A::Rmd128 => State::Rmd128(Default::default()),
            A::Rmd160 => State::Rmd160(Default::default()),
            A::Rmd256 => State::Rmd256(Default::default()),
            A::Rmd320 => State::Rmd320(Default::default()),
            A::Wp256 | A::Wp384 | A::Wp512 => State::Whirlpool(Default::default()),
            A::Tgr128 | A::Tgr160 | A::Tgr192 => State::Tiger(Default::default()),
            A::Sm3 => State::Sm3(Default::default()),
            A::Streebog256 => State::Streebog256(Default::default()),
            A::Streebog512 => State::Streebog512(Default::default()),
            A::Sha3_256 => State::Sha3_256(Default::default()),
            A::Sha3_384 => State::Sha3_384(Default::default()),
            A::Sha3_512 => State::Sha3_512(Default::default()),
        };
        Ok(Hasher { algo, state })
    }

    /// The algorithm this state computes.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        each_state!(&mut self.state, h => Digest::update(h, data))
    }

    /// The algorithm's input block size in bytes, to which HMAC pads its key.
    pub fn block_size(&self) -> usize {
        fn of<T: digest::core_api::BlockSizeUser>(_: &T) -> usize {
            T::block_size()
        }
        each_state!(&self.state, h => of(h))
    }

    /// Finish and write the digest into `out`, which must be exactly
    /// [`HashAlgo::digest_len`] bytes long. Allocation-free.
    ///
    /// # Panics
    /// If `out` has the wrong length (a caller bug, not an input error).
    pub fn finalize_into(self, out: &mut [u8]) {
        let len = self.algo.digest_len();
        assert_eq!(out.len(), len, "digest buffer for {}", self.algo);
        each_state!(self.state, h => {
            let full = h.finalize();
            out.copy_from_slice(&full[..len]);
        })
    }

    /// Finish and return the digest.
    pub fn finalize(self) -> Vec<u8> {
        let mut out = vec![0; self.algo.digest_len()];
        self.finalize_into(&mut out);
        out
    }
}

/// HMAC (RFC 2104) of the concatenated `parts` with `key`, for any algorithm of the
/// table: what the kernel's `hmac(ALG)` and OpenSSL's `HMAC()` compute.
pub fn hmac(algo: HashAlgo, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    let mut inner = Hasher::new(algo)?;
    let block = inner.block_size();
    let mut padded = if key.len() > block {
        algo.digest(key)?
    } else {
        key.to_vec()
    };
    padded.resize(block, 0);
    let xor = |pad: u8| padded.iter().map(|b| b ^ pad).collect::<Vec<u8>>();
    inner.update(&xor(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Hasher::new(algo)?;
    outer.update(&xor(0x5c));
    outer.update(&inner.finalize());
    Ok(outer.finalize())
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(algo: HashAlgo, data: &[u8]) -> String {
        hex::encode(algo.digest(data).unwrap())
    }

    #[test]
    fn table_is_consistent() {
        for (i, &a) in HashAlgo::ALL.iter().enumerate() {
            assert_eq!(a as usize, i);
            assert_eq!(HashAlgo::from_id(i as u8).unwrap(), a);
            assert_eq!(HashAlgo::from_name(a.name()).unwrap(), a);
            assert_eq!(HashAlgo::from_name(a.openssl_name()).unwrap(), a);
            assert_eq!(a.digest(b"").unwrap().len(), a.digest_len());
            if let Some(id) = a.tpm_alg_id() {
                assert_eq!(HashAlgo::from_tpm_alg_id(id), Some(a));
            }
        }
        assert!(HashAlgo::from_id(23).is_err());
        assert!(HashAlgo::from_name("SHA256").is_err());
        assert!(HashAlgo::from_name("sha512-224").is_err());
    }

    #[test]
    fn known_answers_abc() {
        use HashAlgo as A;
        let abc = b"abc";
        assert_eq!(hex_of(A::Md4, abc), "a448017aaf21d8525fc10ae87aa6729d");
        assert_eq!(hex_of(A::Md5, abc), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex_of(A::Sha1, abc),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_of(A::Sha256, abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of(A::Sha224, abc),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
        assert_eq!(
            hex_of(A::Rmd160, abc),
            "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
        );
        assert_eq!(
            hex_of(A::Sm3, abc),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex_of(A::Sha3_256, abc),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        // Truncated Whirlpool is the prefix of the full digest.
        let wp = hex_of(A::Wp512, abc);
        assert_eq!(hex_of(A::Wp256, abc), wp[..64]);
        assert_eq!(hex_of(A::Wp384, abc), wp[..96]);
    }

    #[test]
    fn hmac_known_answers() {
        use HashAlgo as A;
        // RFC 2202 case 1, RFC 4231 cases 1 and 6 (a key longer than the block).
        let short = [0x0b; 20];
        let long = [0xaa; 131];
        let large = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let mac = |a, k: &[u8], m: &[u8]| hex::encode(hmac(a, k, &[m]).unwrap());
        assert_eq!(
            mac(A::Sha1, &short, b"Hi There"),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            mac(A::Sha256, &short, b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            mac(A::Sha256, &long, large),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            mac(A::Sha512, &long, large),
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
        );
    }

    proptest::proptest! {
        /// Any key length (shorter, as long as, longer than a block) and split of the
        /// message gives what RustCrypto's `hmac` crate computes.
        #[test]
        fn hmac_matches_the_hmac_crate(
            key in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            msg in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            cut in 0usize..300,
        ) {
            use hmac::Mac;
            use HashAlgo as A;
            fn reference<D: Digest + digest::core_api::BlockSizeUser>(
                key: &[u8],
                msg: &[u8],
            ) -> Vec<u8> {
                let mut m = <hmac::SimpleHmac<D> as Mac>::new_from_slice(key).unwrap();
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            let (a, b) = msg.split_at(cut.min(msg.len()));
            let ours = |algo| hmac(algo, &key, &[a, b]).unwrap();
            proptest::prop_assert_eq!(ours(A::Sha1), reference::<sha1::Sha1>(&key, &msg));
            proptest::prop_assert_eq!(ours(A::Sha256), reference::<sha2::Sha256>(&key, &msg));
            proptest::prop_assert_eq!(ours(A::Sha512), reference::<sha2::Sha512>(&key, &msg));
            proptest::prop_assert_eq!(ours(A::Sha3_256), reference::<sha3::Sha3_256>(&key, &msg));
            proptest::prop_assert_eq!(ours(A::Sm3), reference::<sm3::Sm3>(&key, &msg));
            proptest::prop_assert_eq!(ours(A::Md5), reference::<md5::Md5>(&key, &msg));
        }
    }
}
