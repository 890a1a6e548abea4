//! Generated measurement lists and PCR files for the `vigil log` tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigil_ima::list::{binary, DigestAlgo, Endian, ExtendMode, Field, Record, Replay, Template};
use vigil_ima::HashAlgo;

pub const LE: Endian = Endian::Little;

pub fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

pub fn fixture(p: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../../shared/testdata/{p}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes_upto(&mut self, n: u64) -> Vec<u8> {
        let len = self.below(n) as usize;
        self.bytes(len)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn path(&mut self) -> Vec<u8> {
        let depth = 1 + self.below(4);
        let mut p = Vec::new();
        for _ in 0..depth {
            p.extend_from_slice(b"/");
            for _ in 0..1 + self.below(12) {
                p.push(b"abcdefghijklmnopqrstuvwxyz0123456789._-"[self.below(39) as usize]);
            }
        }
        p
    }
}

/// Every built-in template except `ima`, and custom format strings.
pub const TEMPLATES: &[&str] = &[
    "ima-ng",
    "ima-sig",
    "ima-ngv2",
    "ima-sigv2",
    "ima-buf",
    "ima-modsig",
    "evm-sig",
    "d-ng|n-ng|sig|iuid|igid|imode",
    "d-ngv2|n-ng|buf|xattrnames",
];

fn sig(rng: &mut Rng, ty: u8) -> Vec<u8> {
    if rng.below(3) == 0 {
        return vec![];
    }
    let n = 64 + rng.below(200) as usize;
    let mut s = vec![ty, 2, 4];
    s.extend_from_slice(&rng.bytes(4));
    s.extend_from_slice(&(n as u16).to_be_bytes());
    s.extend_from_slice(&rng.bytes(n));
    s
}

/// A record of `template` with random content; `violation` zeroes its digests.
pub fn record(rng: &mut Rng, template: &str, pcr: u32, violation: bool) -> Record {
    let t = Template::from_name(template);
    let algo = [
        HashAlgo::Sha256,
        HashAlgo::Sha1,
        HashAlgo::Sha512,
        HashAlgo::Sm3,
    ][rng.below(4) as usize];
    let digest = |rng: &mut Rng| {
        if violation {
            vec![0; algo.digest_len()]
        } else {
            rng.bytes(algo.digest_len())
        }
    };
    let fields = t
        .fields
        .unwrap()
        .into_iter()
        .map(|id| {
            use vigil_ima::list::FieldId as F;
            match id {
                F::D => Field::D(if violation {
                    vec![0; 20]
                } else {
                    rng.bytes(20)
                }),
                F::N => Field::N(rng.path()),
                F::DigestNg => Field::DigestNg {
                    algo: DigestAlgo::Known(algo),
                    digest: digest(rng),
                },
                F::DigestNgV2 => Field::DigestNgV2 {
                    kind: if rng.below(2) == 0 {
                        "ima".into()
                    } else {
                        "verity".into()
                    },
                    algo: DigestAlgo::Known(algo),
                    digest: digest(rng),
                },
                F::NameNg => Field::NameNg(rng.path()),
                F::Sig => Field::Sig(if violation { vec![] } else { sig(rng, 3) }),
                F::Buf => Field::Buf(rng.bytes_upto(40)),
                F::DModsig => {
                    if rng.below(2) == 0 {
                        Field::Raw { id, data: vec![] }
                    } else {
                        Field::DModsig {
                            algo: DigestAlgo::Known(algo),
                            digest: rng.bytes(algo.digest_len()),
                        }
                    }
                }
                F::Modsig => Field::Modsig(rng.bytes_upto(100)),
                F::EvmSig => Field::EvmSig(sig(rng, 5)),
                F::XattrNames => Field::XattrNames(b"security.selinux|security.ima\0".to_vec()),
                F::XattrLengths => {
                    Field::XattrLengths([4u32, 2].iter().flat_map(|l| l.to_le_bytes()).collect())
                }
                F::XattrValues => Field::XattrValues(rng.bytes(6)),
                F::IUid => Field::IUid(rng.below(70000) as u32),
                F::IGid => Field::IGid(rng.below(70000) as u32),
                F::IMode => Field::IMode(0o100000 | rng.below(0o7777) as u16),
                F::Unknown => unreachable!(),
            }
        })
        .collect();
    let mut r = Record {
        pcr,
        digest_algo: HashAlgo::Sha1,
        digest: vec![0; 20],
        template_name: template.into(),
        fields,
    };
    if !violation {
        r.digest = r.template_digest(HashAlgo::Sha1, LE).unwrap();
    }
    r
}

/// A list of `n` records cycling through `templates`, with violations every
/// `violation_every` records (0: none) and PCRs from `pcrs`.
pub fn list(
    seed: u64,
    n: usize,
    templates: &[&str],
    violation_every: usize,
    pcrs: &[u32],
) -> Vec<Record> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let v = violation_every != 0 && i % violation_every == violation_every - 1;
            let pcr = pcrs[rng.below(pcrs.len() as u64) as usize];
            record(&mut rng, templates[i % templates.len()], pcr, v)
        })
        .collect()
}

pub fn encode(recs: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in recs {
        binary::encode_record(r, LE, &mut out);
    }
    out
}

/// Replay `recs` into `algo` (violations 0xFF…).
pub fn replay(recs: &[Record], algo: HashAlgo, mode: ExtendMode) -> Replay {
    let mut r = Replay::new(&[algo], mode);
    for rec in recs {
        r.extend_record(rec, LE).unwrap();
    }
    r
}

/// An evmctl `--pcrs` file (`PCR-NN: hex` for all 24 PCRs).
pub fn pcr_file(dir: &Path, name: &str, r: &Replay, algo: HashAlgo) -> PathBuf {
    let b = r.banks.get(algo).unwrap();
    let text: String = (0..24)
        .map(|i| format!("PCR-{i:02}: {}\n", hex::encode(b.pcr(i))))
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn evmctl() -> Command {
    assert!(
        Path::new("/usr/bin/evmctl").exists(),
        "evmctl is needed for the differential tests: run scripts/install-deps.sh"
    );
    Command::new("/usr/bin/evmctl")
}
