//! GNU `getopt_long` semantics for the drop-in front doors (`evmctl`, `fsverity`), whose
//! users' scripts depend on exactly how those tools read their command lines:
//! clustered short options (`-vv`), attached (`-psecret`) and detached short
//! arguments, `--long=value` and `--long value`, optional arguments that must be
//! attached, unambiguous prefixes of long options, permutation (options may follow
//! operands) and `--` to end options.

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    No,
    Required,
    /// Only an attached value counts (`-pVALUE`, `--pass=VALUE`).
    Optional,
}

/// One option a front door accepts: its short letter and/or long name, and a key the
/// caller matches on.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub short: Option<char>,
    pub long: Option<&'static str>,
    pub has_arg: HasArg,
    pub key: &'static str,
}

impl Opt {
    pub const fn new(
        short: Option<char>,
        long: Option<&'static str>,
        has_arg: HasArg,
        key: &'static str,
    ) -> Opt {
        Opt {
            short,
            long,
            has_arg,
            key,
        }
    }
}

/// The parsed command line: options in the order given, then operands. `T` is `String`
/// for [`parse`] and `OsString` for [`parse_os`].
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<T = String> {
    pub opts: Vec<(&'static str, Option<T>)>,
    pub operands: Vec<T>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed {
            opts: Vec::new(),
            operands: Vec::new(),
        }
    }
}

impl Parsed {
    /// Whether option `key` was given at least once.
    pub fn has(&self, key: &str) -> bool {
        self.opts.iter().any(|(k, _)| *k == key)
    }
    /// How often option `key` was given (`-vvv` → 3).
    pub fn count(&self, key: &str) -> usize {
        self.opts.iter().filter(|(k, _)| *k == key).count()
    }
    /// The last value given for `key` (later options override earlier ones, as in C tools).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }
    /// Every value given for `key`, in order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.opts
            .iter()
            .filter(move |(k, _)| *k == key)
            .filter_map(|(_, v)| v.as_deref())
    }
}

/// What went wrong, worded as GNU getopt words it (the caller prefixes the program name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetoptError {
    Unrecognized(String),
    Ambiguous(String),
    MissingArgument(String),
    UnexpectedArgument(String),
}

impl std::fmt::Display for GetoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetoptError::Unrecognized(o) if o.starts_with("--") => {
                write!(f, "unrecognized option '{o}'")
            }
            GetoptError::Unrecognized(o) => write!(f, "invalid option -- '{}'", &o[1..]),
            GetoptError::Ambiguous(o) => write!(f, "option '{o}' is ambiguous"),
            GetoptError::MissingArgument(o) if o.starts_with("--") => {
                write!(f, "option '{o}' requires an argument")
            }
            GetoptError::MissingArgument(o) => {
                write!(f, "option requires an argument -- '{}'", &o[1..])
            }
            GetoptError::UnexpectedArgument(o) => {
                write!(f, "option '{o}' doesn't allow an argument")
            }
        }
    }
}

impl std::error::Error for GetoptError {}

/// A command-line word: a `String`, or an `OsString` whose bytes need not be UTF-8.
trait Arg: Clone {
    fn bytes(&self) -> &[u8];
    /// Rebuild a word from a piece of one, cut at an ASCII byte or a character boundary.
    fn from_bytes(b: &[u8]) -> Self;
}

impl Arg for String {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn from_bytes(b: &[u8]) -> Self {
        String::from_utf8_lossy(b).into_owned()
    }
}

impl Arg for std::ffi::OsString {
    fn bytes(&self) -> &[u8] {
        std::os::unix::ffi::OsStrExt::as_bytes(self.as_os_str())
    }
    fn from_bytes(b: &[u8]) -> Self {
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b).to_owned()
    }
}

/// Parse `args` (without `argv[0]`) against `spec`.
pub fn parse(spec: &[Opt], args: &[String]) -> Result<Parsed, GetoptError> {
    parse_args(spec, args, false)
}

/// [`parse`] for arguments that need not be UTF-8 (file names are kept byte for byte).
/// With `posixly_correct`, options end at the first operand, as glibc's `getopt_long`
/// does when `POSIXLY_CORRECT` is set.
pub fn parse_os(
    spec: &[Opt],
    args: &[std::ffi::OsString],
    posixly_correct: bool,
) -> Result<Parsed<std::ffi::OsString>, GetoptError> {
    parse_args(spec, args, posixly_correct)
}

/// The first character of `b` (a lone byte when `b` does not start with valid UTF-8)
/// and its length in bytes.
fn first_char(b: &[u8]) -> (char, usize) {
    let head = &b[..b.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => (char::from(b[0]), 1),
    }
}

fn parse_args<T: Arg>(
    spec: &[Opt],
    args: &[T],
    stop_at_operand: bool,
) -> Result<Parsed<T>, GetoptError> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        let arg = word.bytes();
        i += 1;
        if arg == b"--" {
            parsed.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix(b"--") {
            let (name, attached) = match body.iter().position(|&b| b == b'=') {
                Some(eq) => (&body[..eq], Some(T::from_bytes(&body[eq + 1..]))),
                None => (body, None),
            };
            let opt = find_long(spec, &lossy(name), &lossy(arg))?;
            let shown = format!("--{}", opt.long.unwrap_or_default());
            let value = match (opt.has_arg, attached) {
                (HasArg::No, Some(_)) => return Err(GetoptError::UnexpectedArgument(shown)),
                (HasArg::No, None) => None,
                (_, Some(v)) => Some(v),
                (HasArg::Optional, None) => None,
                (HasArg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(GetoptError::MissingArgument(shown)),
                },
            };
            parsed.opts.push((opt.key, value));
        } else if arg.len() > 1 && arg[0] == b'-' {
            let mut j = 1;
            while j < arg.len() {
                let (c, len) = first_char(&arg[j..]);
                j += len;
                let opt = spec
                    .iter()
                    .find(|o| o.short == Some(c))
                    .ok_or_else(|| GetoptError::Unrecognized(format!("-{c}")))?;
                let rest = &arg[j..];
                let value = match opt.has_arg {
                    HasArg::No => None,
                    HasArg::Optional => {
                        j = arg.len();
                        (!rest.is_empty()).then(|| T::from_bytes(rest))
                    }
                    HasArg::Required => {
                        j = arg.len();
                        if !rest.is_empty() {
                            Some(T::from_bytes(rest))
                        } else if let Some(v) = args.get(i) {
                            i += 1;
                            Some(v.clone())
                        } else {
                            return Err(GetoptError::MissingArgument(format!("-{c}")));
                        }
                    }
                };
                parsed.opts.push((opt.key, value));
            }
        } else if stop_at_operand {
            parsed.operands.extend(args[i - 1..].iter().cloned());
            break;
        } else {
            parsed.operands.push(word.clone());
        }
    }
    Ok(parsed)
}

fn find_long<'a>(spec: &'a [Opt], name: &str, arg: &str) -> Result<&'a Opt, GetoptError> {
    if let Some(exact) = spec.iter().find(|o| o.long == Some(name)) {
        return Ok(exact);
    }
    let mut candidates = spec
        .iter()
        .filter(|o| o.long.is_some_and(|l| l.starts_with(name)) && !name.is_empty());
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Ok(only),
        (Some(_), Some(_)) => Err(GetoptError::Ambiguous(
            arg.split('=').next().unwrap_or(arg).to_owned(),
        )),
        _ => Err(GetoptError::Unrecognized(
            arg.split('=').next().unwrap_or(arg).to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Opt] = &[
        Opt::new(Some('a'), Some("hashalgo"), HasArg::Required, "algo"),
        Opt::new(Some('p'), Some("pass"), HasArg::Optional, "pass"),
        Opt::new(Some('v'), None, HasArg::No, "verbose"),
        Opt::new(None, Some("key"), HasArg::Required, "key"),
        Opt::new(None, Some("keyid"), HasArg::Required, "keyid"),
        Opt::new(None, Some("sigfile"), HasArg::No, "sigfile"),
    ];

    fn p(args: &[&str]) -> Result<Parsed, GetoptError> {
        parse(
            SPEC,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn gnu_semantics() {
        let r = p(&[
            "ima_sign",
            "-vv",
            "-a",
            "sha1",
            "--key=k.pem",
            "file",
            "-psecret",
            "--sigf",
        ])
        .unwrap();
        assert_eq!(r.operands, ["ima_sign", "file"]);
        assert_eq!(r.count("verbose"), 2);
        assert_eq!(r.value("algo"), Some("sha1"));
        assert_eq!(r.value("key"), Some("k.pem"));
        assert_eq!(r.value("pass"), Some("secret"));
        assert!(r.has("sigfile"));
        // An optional argument is never taken from the next word.
        let r = p(&["-p", "secret"]).unwrap();
        assert_eq!(r.value("pass"), None);
        assert_eq!(r.operands, ["secret"]);
        // Exact match wins over a prefix; a shared prefix is ambiguous.
        assert_eq!(p(&["--key", "x"]).unwrap().value("key"), Some("x"));
        assert_eq!(
            p(&["--ke", "x"]),
            Err(GetoptError::Ambiguous("--ke".into()))
        );
        assert!(matches!(p(&["-x"]), Err(GetoptError::Unrecognized(_))));
        assert!(matches!(
            p(&["--key"]),
            Err(GetoptError::MissingArgument(_))
        ));
        assert!(matches!(
            p(&["--sigfile=1"]),
            Err(GetoptError::UnexpectedArgument(_))
        ));
        assert_eq!(p(&["--", "-v"]).unwrap().operands, ["-v"]);
        assert_eq!(p(&["-ash1"]).unwrap().value("algo"), Some("sh1"));
    }

    #[test]
    fn os_strings_and_posixly_correct() {
        use std::ffi::OsString;
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let args: Vec<OsString> = [&b"f\xff"[..], b"--key=k\xfe", b"-v", b"g"]
            .iter()
            .map(|b| OsString::from_vec(b.to_vec()))
            .collect();
        let r = parse_os(SPEC, &args, false).unwrap();
        assert_eq!(r.operands, [args[0].clone(), args[3].clone()]);
        assert_eq!(r.opts[0].1.as_ref().unwrap().as_bytes(), b"k\xfe");
        assert_eq!(r.opts[1], ("verbose", None));
        // POSIXLY_CORRECT: everything from the first operand on is an operand.
        let r = parse_os(SPEC, &args, true).unwrap();
        assert!(r.opts.is_empty());
        assert_eq!(r.operands, args);
        assert!(matches!(
            parse_os(SPEC, &[OsString::from_vec(b"-\xff".to_vec())], false),
            Err(GetoptError::Unrecognized(_))
        ));
    }
}
