//! Templates (`ima`, `ima-ng`, … and custom `ima_template_fmt=` strings) and the typed
//! fields of template data, with their binary encodings and ASCII renderings (§1.4, §1.5).

use super::Endian;
use crate::{Error, HashAlgo, Result};

macro_rules! field_ids {
    ($( $variant:ident = $id:literal, $doc:literal; )*) => {
        /// A template field id (`template_fields[]` of the kernel).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FieldId {
            $( #[doc = $doc] $variant, )*
            /// A field of a template whose layout is not known (its name is neither a
            /// built-in template nor a format string of known field ids).
            Unknown,
        }

        impl FieldId {
            /// The id as written in format strings.
            pub const fn as_str(self) -> &'static str {
                match self { $( FieldId::$variant => $id, )* FieldId::Unknown => "?" }
            }

            /// Look up a field id.
            pub fn from_id(id: &str) -> Option<FieldId> {
                match id { $( $id => Some(FieldId::$variant), )* _ => None }
            }
        }
    };
}

field_ids! {
    D = "d", "`d`: SHA-1/MD5 file digest, raw.";
    N = "n", "`n`: name; with its terminating NUL, except in the legacy `ima` template's layout.";
    DigestNg = "d-ng", "`d-ng`: `<algo>:\\0<digest>`.";
    DigestNgV2 = "d-ngv2", "`d-ngv2`: `<type>:<algo>:\\0<digest>`.";
    NameNg = "n-ng", "`n-ng`: name with terminating NUL.";
    Sig = "sig", "`sig`: the `security.ima` signature (or EVM portable signature).";
    Buf = "buf", "`buf`: a measured buffer.";
    DModsig = "d-modsig", "`d-modsig`: digest of a file without its appended signature.";
    Modsig = "modsig", "`modsig`: the appended PKCS#7 signature.";
    EvmSig = "evmsig", "`evmsig`: the `security.evm` portable signature.";
    XattrNames = "xattrnames", "`xattrnames`: EVM-protected xattr names joined by `|`.";
    XattrLengths = "xattrlengths", "`xattrlengths`: one u32 per xattr.";
    XattrValues = "xattrvalues", "`xattrvalues`: the xattr values, concatenated.";
    IUid = "iuid", "`iuid`: inode owner, u32.";
    IGid = "igid", "`igid`: inode group, u32.";
    IMode = "imode", "`imode`: inode mode, u16.";
}

impl std::fmt::Display for FieldId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most fields a kernel template can have (`IMA_TEMPLATE_NUM_FIELDS_MAX`).
pub const MAX_FIELDS: usize = 15;

/// A template: its name and field layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Name as written in the list.
    pub name: String,
    /// Field layout, or `None` when the name is neither a built-in template nor a
    /// format string of known field ids: the data is then read as generic
    /// length-prefixed fields ([`FieldId::Unknown`]).
    pub fields: Option<Vec<FieldId>>,
}

/// The kernel's built-in templates (`builtin_templates[]`).
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("ima", "d|n"),
    ("ima-ng", "d-ng|n-ng"),
    ("ima-sig", "d-ng|n-ng|sig"),
    ("ima-ngv2", "d-ngv2|n-ng"),
    ("ima-sigv2", "d-ngv2|n-ng|sig"),
    ("ima-buf", "d-ng|n-ng|buf"),
    ("ima-modsig", "d-ng|n-ng|sig|d-modsig|modsig"),
    (
        "evm-sig",
        "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode",
    ),
];

impl Template {
    /// The template a list names: a built-in, or a custom format string.
    pub fn from_name(name: &str) -> Template {
        let fmt = BUILTIN_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name, |(_, f)| f);
        Template {
            name: name.to_owned(),
            fields: parse_fmt(fmt),
        }
    }

    /// A custom template from an `ima_template_fmt=` string such as `d-ng|n-ng|sig`;
    /// its name in the list is the format string itself.
    pub fn from_fmt(fmt: &str) -> Result<Template> {
        let fields = parse_fmt(fmt).ok_or_else(|| Error::ListField {
            field: "template format",
            msg: format!(
                "{fmt:?} is not a '|'-separated list of at most {MAX_FIELDS} known field ids"
            ),
        })?;
        Ok(Template {
            name: fmt.to_owned(),
            fields: Some(fields),
        })
    }

    /// The format string (`d-ng|n-ng` for `ima-ng`).
    pub fn fmt(&self) -> Option<String> {
        self.fields
            .as_ref()
            .map(|f| f.iter().map(|id| id.as_str()).collect::<Vec<_>>().join("|"))
    }

    /// Whether this is the legacy `ima` template with its special layout.
    pub fn is_ima(&self) -> bool {
        self.name == super::IMA_TEMPLATE
    }
}

fn parse_fmt(fmt: &str) -> Option<Vec<FieldId>> {
    let ids: Option<Vec<FieldId>> = fmt.split('|').map(FieldId::from_id).collect();
    ids.filter(|v| !v.is_empty() && v.len() <= MAX_FIELDS)
}

/// The algorithm prefix of a `d-ng`, `d-ngv2` or `d-modsig` field, kept exactly as
/// written so that records re-encode byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DigestAlgo {
    /// A kernel algorithm name (`sha256`, `sm3`, `sha3-256`…).
    Known(HashAlgo),
    /// An empty name (`:\0` + digest), written by old kernels for SHA-1/MD5.
    Legacy,
    /// Any other name (Keylime's `sm3_256`, a name from a newer kernel), verbatim.
    Other(String),
}

impl DigestAlgo {
    /// Parse the name in front of `:`.
    pub fn from_name(name: &str) -> DigestAlgo {
        if name.is_empty() {
            return DigestAlgo::Legacy;
        }
        match HashAlgo::from_name(name) {
            Ok(a) if a.name() == name => DigestAlgo::Known(a),
            _ => DigestAlgo::Other(name.to_owned()),
        }
    }

    /// The name as written (empty for [`DigestAlgo::Legacy`]).
    pub fn name(&self) -> &str {
        match self {
            DigestAlgo::Known(a) => a.name(),
            DigestAlgo::Legacy => "",
            DigestAlgo::Other(s) => s,
        }
    }

    /// The hash algorithm: the kernel's, an alias's, or inferred from a legacy digest's
    /// length (20 → sha1, 16 → md5).
    pub fn hash_algo(&self, digest_len: usize) -> Option<HashAlgo> {
        match self {
            DigestAlgo::Known(a) => Some(*a),
            DigestAlgo::Legacy => HashAlgo::from_legacy_len(digest_len),
            DigestAlgo::Other(s) => HashAlgo::from_name(s).ok(),
        }
    }
}

/// One field of template data, typed by its id.
///
/// Every variant keeps the exact stored bytes, so decoding then encoding a record is
/// the identity. Data that does not have its field's shape (an empty `d-ng`, a `n-ng`
/// without NUL, an `iuid` of 2 bytes…) is kept as [`Field::Raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `d`: raw digest.
    D(Vec<u8>),
    /// `n`: name bytes as stored: with the terminating NUL in custom templates, without
    /// it in the legacy `ima` template (whose binary layout writes `strlen` bytes).
    N(Vec<u8>),
    /// `d-ng`.
    DigestNg {
        /// Algorithm prefix.
        algo: DigestAlgo,
        /// Digest bytes.
        digest: Vec<u8>,
    },
    /// `d-ngv2`.
    DigestNgV2 {
        /// `ima` (file hash) or `verity` (fs-verity digest).
        kind: String,
        /// Algorithm prefix.
        algo: DigestAlgo,
        /// Digest bytes.
        digest: Vec<u8>,
    },
    /// `n-ng`: the name without its terminating NUL (which the encoding adds back).
    NameNg(Vec<u8>),
    /// `sig`: whole `security.ima` (or `security.evm`) value; empty if none.
    Sig(Vec<u8>),
    /// `buf`: measured buffer; empty if none.
    Buf(Vec<u8>),
    /// `d-modsig` with a digest (an empty one is [`Field::Raw`]).
    DModsig {
        /// Algorithm prefix.
        algo: DigestAlgo,
        /// Digest bytes.
        digest: Vec<u8>,
    },
    /// `modsig`: appended PKCS#7 signature; empty if none.
    Modsig(Vec<u8>),
    /// `evmsig`: whole `security.evm` if a portable signature; empty if none.
    EvmSig(Vec<u8>),
    /// `xattrnames`: stored bytes (names joined by `|`, NUL-terminated).
    XattrNames(Vec<u8>),
    /// `xattrlengths`: stored bytes (u32 per xattr in list byte order).
    XattrLengths(Vec<u8>),
    /// `xattrvalues`: stored bytes.
    XattrValues(Vec<u8>),
    /// `iuid`.
    IUid(u32),
    /// `igid`.
    IGid(u32),
    /// `imode`.
    IMode(u16),
    /// Data kept verbatim: of an unknown field, or not in its field's usual shape.
    Raw {
        /// Field id.
        id: FieldId,
        /// Stored bytes.
        data: Vec<u8>,
    },
}

/// How a field is rendered in the ASCII list (`enum data_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Digest,
    DigestWithAlgo,
    String,
    Hex,
    Uint,
}

fn fmt_of(id: FieldId) -> Fmt {
    use FieldId as F;
    match id {
        F::D => Fmt::Digest,
        F::DigestNg | F::DigestNgV2 | F::DModsig => Fmt::DigestWithAlgo,
        F::N | F::NameNg | F::XattrNames => Fmt::String,
        F::IUid | F::IGid | F::IMode => Fmt::Uint,
        F::Sig | F::Buf | F::Modsig | F::EvmSig | F::XattrLengths | F::XattrValues | F::Unknown => {
            Fmt::Hex
        }
    }
}

/// Split `<prefix>\0<digest>` where prefix ends in ':'.
fn split_prefixed(data: &[u8]) -> Option<(&str, &[u8])> {
    let nul = data.iter().position(|&b| b == 0)?;
    let prefix = std::str::from_utf8(&data[..nul]).ok()?;
    let prefix = prefix.strip_suffix(':')?;
    Some((prefix, &data[nul + 1..]))
}

impl Field {
    /// The field id.
    pub fn id(&self) -> FieldId {
        match self {
            Field::D(_) => FieldId::D,
            Field::N(_) => FieldId::N,
            Field::DigestNg { .. } => FieldId::DigestNg,
            Field::DigestNgV2 { .. } => FieldId::DigestNgV2,
            Field::NameNg(_) => FieldId::NameNg,
            Field::Sig(_) => FieldId::Sig,
            Field::Buf(_) => FieldId::Buf,
            Field::DModsig { .. } => FieldId::DModsig,
            Field::Modsig(_) => FieldId::Modsig,
            Field::EvmSig(_) => FieldId::EvmSig,
            Field::XattrNames(_) => FieldId::XattrNames,
            Field::XattrLengths(_) => FieldId::XattrLengths,
            Field::XattrValues(_) => FieldId::XattrValues,
            Field::IUid(_) => FieldId::IUid,
            Field::IGid(_) => FieldId::IGid,
            Field::IMode(_) => FieldId::IMode,
            Field::Raw { id, .. } => *id,
        }
    }

    /// Decode the stored bytes of field `id`. Never fails: data not in the field's
    /// shape becomes [`Field::Raw`].
    pub fn decode(id: FieldId, data: &[u8], endian: Endian) -> Field {
        let raw = || Field::Raw {
            id,
            data: data.to_vec(),
        };
        match id {
            FieldId::D => Field::D(data.to_vec()),
            FieldId::N => Field::N(data.to_vec()),
            FieldId::DigestNg | FieldId::DModsig => match split_prefixed(data) {
                Some((algo, digest)) if !algo.contains(':') => {
                    let algo = DigestAlgo::from_name(algo);
                    let digest = digest.to_vec();
                    if id == FieldId::DigestNg {
                        Field::DigestNg { algo, digest }
                    } else {
                        Field::DModsig { algo, digest }
                    }
                }
                _ => raw(),
            },
            FieldId::DigestNgV2 => match split_prefixed(data).and_then(|(p, d)| {
                let (kind, algo) = p.split_once(':')?;
                (!algo.contains(':')).then_some((kind, algo, d))
            }) {
                Some((kind, algo, digest)) => Field::DigestNgV2 {
                    kind: kind.to_owned(),
                    algo: DigestAlgo::from_name(algo),
                    digest: digest.to_vec(),
                },
                None => raw(),
            },
            FieldId::NameNg => match data.split_last() {
                Some((0, name)) => Field::NameNg(name.to_vec()),
                _ => raw(),
            },
            FieldId::Sig => Field::Sig(data.to_vec()),
            FieldId::Buf => Field::Buf(data.to_vec()),
            FieldId::Modsig => Field::Modsig(data.to_vec()),
            FieldId::EvmSig => Field::EvmSig(data.to_vec()),
            FieldId::XattrNames => Field::XattrNames(data.to_vec()),
            FieldId::XattrLengths => Field::XattrLengths(data.to_vec()),
            FieldId::XattrValues => Field::XattrValues(data.to_vec()),
            FieldId::IUid | FieldId::IGid => match <[u8; 4]>::try_from(data) {
                Ok(b) if id == FieldId::IUid => Field::IUid(endian.u32(b)),
                Ok(b) => Field::IGid(endian.u32(b)),
                Err(_) => raw(),
            },
            FieldId::IMode => match <[u8; 2]>::try_from(data) {
                Ok(b) => Field::IMode(endian.u16(b)),
                Err(_) => raw(),
            },
            FieldId::Unknown => raw(),
        }
    }

    /// The stored bytes (without the u32 length word).
    pub fn encode(&self, endian: Endian) -> Vec<u8> {
        fn prefixed(prefix: &[&str], digest: &[u8]) -> Vec<u8> {
            let mut v = Vec::with_capacity(16 + digest.len());
            for p in prefix {
                v.extend_from_slice(p.as_bytes());
                v.push(b':');
            }
            v.push(0);
            v.extend_from_slice(digest);
            v
        }
        match self {
            Field::DigestNg { algo, digest } | Field::DModsig { algo, digest } => {
                prefixed(&[algo.name()], digest)
            }
            Field::DigestNgV2 { kind, algo, digest } => prefixed(&[kind, algo.name()], digest),
            Field::NameNg(n) => {
                let mut v = Vec::with_capacity(n.len() + 1);
                v.extend_from_slice(n);
                v.push(0);
                v
            }
            Field::IUid(v) | Field::IGid(v) => endian.u32_bytes(*v).to_vec(),
            Field::IMode(v) => endian.u16_bytes(*v).to_vec(),
            Field::D(b)
            | Field::N(b)
            | Field::Sig(b)
            | Field::Buf(b)
            | Field::Modsig(b)
            | Field::EvmSig(b)
            | Field::XattrNames(b)
            | Field::XattrLengths(b)
            | Field::XattrValues(b)
            | Field::Raw { data: b, .. } => b.clone(),
        }
    }

    /// Append the ASCII rendering of the field as the kernel's
    /// `ima_show_template_data_ascii` prints it (nothing for an empty field).
    pub fn render_ascii(&self, endian: Endian, out: &mut Vec<u8>) {
        let data = self.encode(endian);
        render_ascii_bytes(self.id(), &data, endian, out)
    }

    /// Parse a field from its ASCII rendering (the inverse of [`Field::render_ascii`]
    /// where the ASCII list is not lossy).
    pub fn parse_ascii(id: FieldId, text: &[u8], endian: Endian) -> Result<Field> {
        let bad = |msg: String| Error::ListField {
            field: id.as_str(),
            msg,
        };
        let unhex = |t: &[u8]| {
            hex::decode(t)
                .map_err(|e| bad(format!("{:?} is not hex: {e}", String::from_utf8_lossy(t))))
        };
        if text.is_empty() {
            return Ok(Field::decode(id, &[], endian));
        }
        Ok(match fmt_of(id) {
            Fmt::Digest | Fmt::Hex => Field::decode(id, &unhex(text)?, endian),
            // The kernel stores strings NUL-terminated (`DATA_FMT_STRING`); the `ima`
            // template's caller strips the NUL of `n` again (see `ascii::parse_line`).
            Fmt::String => match id {
                FieldId::NameNg => Field::NameNg(text.to_vec()),
                _ => {
                    let mut v = text.to_vec();
                    v.push(0);
                    Field::decode(id, &v, endian)
                }
            },
            Fmt::DigestWithAlgo => {
                // `[alg:]hex` (d-ng, d-modsig) or `type:alg:hex` (d-ngv2); names are
                // printable and colon-free.
                let colons = if id == FieldId::DigestNgV2 { 2 } else { 1 };
                let (prefix, hexpart) = match text.iter().rposition(|&b| b == b':') {
                    Some(i) => (&text[..=i], &text[i + 1..]),
                    None => (&b""[..], text),
                };
                let names_ok = prefix.iter().all(|b| b.is_ascii_graphic())
                    && prefix.iter().filter(|&&b| b == b':').count()
                        == if prefix.is_empty() { 0 } else { colons }
                    && !prefix.starts_with(b":")
                    && !prefix.windows(2).any(|w| w == b"::");
                if !names_ok || (prefix.is_empty() && id == FieldId::DigestNgV2) {
                    return Err(bad(format!(
                        "{:?} is not {}",
                        String::from_utf8_lossy(text),
                        if colons == 2 {
                            "type:algorithm:hex"
                        } else {
                            "[algorithm:]hex"
                        }
                    )));
                }
                let mut v = if prefix.is_empty() {
                    b":".to_vec()
                } else {
                    prefix.to_vec()
                };
                v.push(0);
                v.extend_from_slice(&unhex(hexpart)?);
                let field = Field::decode(id, &v, endian);
                if let Field::DigestNg { algo, digest }
                | Field::DModsig { algo, digest }
                | Field::DigestNgV2 { algo, digest, .. } = &field
                {
                    if let Some(a) = algo
                        .hash_algo(digest.len())
                        .filter(|a| a.digest_len() != digest.len())
                    {
                        return Err(bad(format!(
                            "{a} digest of {} bytes, not {}",
                            digest.len(),
                            a.digest_len()
                        )));
                    }
                }
                field
            }
            Fmt::Uint => {
                let s = std::str::from_utf8(text).map_err(|_| bad("not a number".into()))?;
                let n: u32 = s
                    .parse()
                    .map_err(|_| bad(format!("{s:?} is not a decimal number")))?;
                match id {
                    FieldId::IMode => Field::IMode(
                        u16::try_from(n)
                            .map_err(|_| bad(format!("{n} does not fit in 16 bits")))?,
                    ),
                    FieldId::IGid => Field::IGid(n),
                    _ => Field::IUid(n),
                }
            }
        })
    }
}

/// Render stored field bytes in the ASCII list.
pub(crate) fn render_ascii_bytes(id: FieldId, data: &[u8], endian: Endian, out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let hex = |b: &[u8], out: &mut Vec<u8>| {
        const H: &[u8; 16] = b"0123456789abcdef";
        out.reserve(b.len() * 2);
        for &x in b {
            out.push(H[(x >> 4) as usize]);
            out.push(H[(x & 15) as usize]);
        }
    };
    let c_str = |b: &[u8]| -> usize { b.iter().position(|&x| x == 0).unwrap_or(b.len()) };
    match fmt_of(id) {
        Fmt::Digest | Fmt::Hex => hex(data, out),
        Fmt::String => out.extend_from_slice(&data[..c_str(data)]),
        Fmt::DigestWithAlgo => {
            // The kernel prints the string up to the last ':' (inclusive) unless that
            // ':' is the first byte, then skips ":\0" and prints the rest as hex.
            let s = &data[..c_str(data)];
            match s.iter().rposition(|&b| b == b':') {
                Some(colon) => {
                    if colon != 0 {
                        out.extend_from_slice(s);
                    }
                    let start = (colon + 2).min(data.len());
                    hex(&data[start..], out);
                }
                None => hex(data, out),
            }
        }
        Fmt::Uint => match data.len() {
            1 => out.extend_from_slice(data[0].to_string().as_bytes()),
            2 => out.extend_from_slice(endian.u16([data[0], data[1]]).to_string().as_bytes()),
            4 => out.extend_from_slice(
                endian
                    .u32([data[0], data[1], data[2], data[3]])
                    .to_string()
                    .as_bytes(),
            ),
            8 => {
                let b: [u8; 8] = data.try_into().expect("length checked");
                let v = match endian {
                    Endian::Little => u64::from_le_bytes(b),
                    Endian::Big => u64::from_be_bytes(b),
                };
                out.extend_from_slice(v.to_string().as_bytes())
            }
            _ => {}
        },
    }
}
