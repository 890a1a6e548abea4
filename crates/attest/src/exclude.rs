//! Keylime's `excludes`: Python regular expressions joined as `(r1)|(r2)|…` and applied
//! with `re.match`, i.e. anchored at the start of the path only (a pattern `/tmp` also
//! excludes `/tmpfoo/bar`).
//!
//! Patterns are translated from Python's `re` syntax to the `regex` crate's:
//! a `{` that does not start a quantifier is a literal (as in Python), `{,n}` means
//! `{0,n}`, `\Z` is the end of the text, a `[` inside a class and the set operators
//! `&&`/`~~` (which the `regex` crate would interpret) are literals.
//!
//! Differences that remain (documented in the README, "Remote attestation"): backreferences
//! (`\1`, `(?P=name)`), lookahead/lookbehind and conditionals are rejected because the
//! `regex` crate has no backtracking; `$` matches only at the very end (Python's also
//! matches before a final newline); `--` inside a class is class subtraction in the
//! `regex` crate. Keylime paths are matched as text; a non-UTF-8 byte in a path matches
//! only a pattern that does not need to look at it.

use regex::bytes::{Regex, RegexBuilder};

use crate::{Error, Result};

/// A compiled exclude list.
#[derive(Debug, Clone)]
pub struct Excludes {
    re: Option<Regex>,
    /// Literals one of which every match starts with, when there are few: most paths
    /// are told apart from the usual `/tmp/.*`-style excludes without the regex.
    prefixes: Option<Vec<Vec<u8>>>,
}

impl Excludes {
    /// Compile `patterns` (an empty list excludes nothing).
    pub fn new(patterns: &[String]) -> Result<Excludes> {
        if patterns.is_empty() {
            return Ok(Excludes {
                re: None,
                prefixes: None,
            });
        }
        let mut combined = String::from("^(?:");
        let mut translated = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            let t = translate(p).map_err(|message| Error::Exclude {
                pattern: p.clone(),
                message,
            })?;
            // Each pattern must stand alone (parentheses balanced within it), or the
            // combination could mean something else; parsing is cheap, compiling (for
            // the error message) only needed when it fails.
            let alone = format!("^(?:{t})");
            if parse(&alone).is_none() {
                compile(&alone).map_err(|message| Error::Exclude {
                    pattern: p.clone(),
                    message,
                })?;
            }
            if i > 0 {
                combined.push('|');
            }
            combined.push_str("(?:");
            combined.push_str(&t);
            combined.push(')');
            translated.push(t);
        }
        combined.push(')');
        let re = compile(&combined).map_err(|message| {
            // Name the culprit: the first pattern that does not compile alone.
            let culprit = patterns
                .iter()
                .zip(&translated)
                .find_map(|(p, t)| compile(&format!("^(?:{t})")).err().map(|m| (p.clone(), m)));
            match culprit {
                Some((pattern, message)) => Error::Exclude { pattern, message },
                None => Error::Exclude {
                    pattern: patterns.join("|"),
                    message,
                },
            }
        })?;
        Ok(Excludes {
            re: Some(re),
            prefixes: prefixes(&combined),
        })
    }

    /// Whether Python's `re.match(combined, path)` would match.
    pub fn matches(&self, path: &[u8]) -> bool {
        let Some(re) = &self.re else { return false };
        if let Some(p) = &self.prefixes {
            if !p.iter().any(|l| path.starts_with(l)) {
                return false;
            }
        }
        re.is_match(path)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.re.is_none()
    }
}

/// The prefix literals of the anchored `pattern` (as the `regex` crate reads it), if
/// there are at most 64: every match starts with one of them.
fn prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = parse(pattern)?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let lits = seq.literals()?;
    (lits.len() <= 64).then(|| lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// `pattern` parsed as `regex::bytes` parses it, if it parses.
fn parse(pattern: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

fn compile(pattern: &str) -> std::result::Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(64 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Whether `s` (just after a `{`) is a Python quantifier body `m}`, `m,}`, `,n}`, `m,n}`;
/// returns its length including the `}` and whether the minimum is missing.
fn quantifier_len(s: &[u8]) -> Option<(usize, bool)> {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let min_missing = i == 0;
    if i < s.len() && s[i] == b'}' {
        return if min_missing {
            None
        } else {
            Some((i + 1, false))
        };
    }
    if i < s.len() && s[i] == b',' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i < s.len() && s[i] == b'}' {
            return Some((i + 1, min_missing));
        }
    }
    None
}

/// Translate a Python `re` pattern into `regex` syntax (see the module docs).
pub fn translate(p: &str) -> std::result::Result<String, String> {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let Some(&n) = b.get(i + 1) else {
                return Err("bad escape (end of pattern)".into());
            };
            match n {
                b'Z' if !in_class => out.push_str(r"\z"),
                b'1'..=b'9' if !in_class => {
                    return Err("backreferences are not supported".into());
                }
                _ => {
                    // Copy the escape and the (possibly multi-byte) escaped character.
                    let ch = p[i + 1..].chars().next().unwrap_or('\\');
                    out.push('\\');
                    out.push(ch);
                    i += 1 + ch.len_utf8();
                    continue;
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                b']' => {
                    in_class = false;
                    out.push(']');
                }
                b'[' => out.push_str(r"\["),
                b'&' | b'~' if b.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c as char);
                }
                _ => {
                    let ch = p[i..].chars().next().unwrap_or('?');
                    out.push(ch);
                    i += ch.len_utf8();
                    continue;
                }
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after `[` or `[^` is a literal in both dialects.
                if b.get(i) == Some(&b']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            b'{' => match quantifier_len(&b[i + 1..]) {
                Some((len, min_missing)) => {
                    out.push('{');
                    if min_missing {
                        out.push('0');
                    }
                    out.push_str(&p[i + 1..i + 1 + len]);
                    i += 1 + len;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            b'}' => out.push_str(r"\}"),
            b'(' if b[i + 1..].starts_with(b"?P=") => {
                return Err("backreferences are not supported".into());
            }
            b'(' if b[i + 1..].starts_with(b"?=")
                || b[i + 1..].starts_with(b"?!")
                || b[i + 1..].starts_with(b"?<=")
                || b[i + 1..].starts_with(b"?<!")
                || b[i + 1..].starts_with(b"?(") =>
            {
                return Err("lookaround assertions and conditionals are not supported".into());
            }
            _ => {
                let ch = p[i..].chars().next().unwrap_or('?');
                out.push(ch);
                i += ch.len_utf8();
                continue;
            }
        }
        i += 1;
    }
    if in_class {
        return Err("unterminated character set".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn anchored_at_start_only() {
        let e = ex(&["/tmp", r"/var/log/.*\.log"]);
        assert!(e.matches(b"/tmp"));
        assert!(e.matches(b"/tmpfoo/bar"));
        assert!(!e.matches(b"/x/tmp"));
        assert!(e.matches(b"/var/log/a.log.1"));
        assert!(!e.matches(b"/var/log/a"));
        assert!(!ex(&[]).matches(b"/tmp"));
    }

    #[test]
    fn python_syntax() {
        assert!(ex(&["/a{"]).matches(b"/a{x"));
        assert!(ex(&["/a{x}"]).matches(b"/a{x}"));
        assert!(ex(&["/ab{,2}c$"]).matches(b"/abbc"));
        assert!(!ex(&["/ab{,2}c$"]).matches(b"/abbbc"));
        assert!(ex(&[r"/x\Z"]).matches(b"/x"));
        assert!(!ex(&[r"/x\Z"]).matches(b"/xy"));
        assert!(ex(&["[[]x"]).matches(b"[x"));
        assert!(ex(&["[]a]+$"]).matches(b"]a]"));
        assert!(ex(&["(?P<n>/usr)/lib"]).matches(b"/usr/lib64"));
        assert!(ex(&[r"/a\-b\/c"]).matches(b"/a-b/c"));
        assert!(ex(&["(?i)/USR"]).matches(b"/usr"));
        assert!(Excludes::new(&["(a)\\1".into()]).is_err());
        assert!(Excludes::new(&["(?=a)".into()]).is_err());
        assert!(Excludes::new(&["[a".into()]).is_err());
        let err = Excludes::new(&["/ok".into(), "(".into()]).unwrap_err();
        assert!(err.to_string().contains("\"(\""), "{err}");
    }

    #[test]
    fn prefixes_of_usual_excludes() {
        let e = ex(&["/tmp/.*", "/var/log/.*", "/proc/.*"]);
        let mut p = e.prefixes.clone().unwrap();
        p.sort();
        assert_eq!(p, [&b"/proc/"[..], b"/tmp/", b"/var/log/"]);
        assert!(e.matches(b"/tmp/x") && !e.matches(b"/usr/tmp/x"));
        // A pattern that can start anywhere gives no filter.
        assert!(ex(&[".*\\.pyc"])
            .prefixes
            .is_none_or(|p| p.contains(&Vec::new())));
    }

    proptest::proptest! {
        /// The prefix filter never changes a verdict.
        #[test]
        fn prefix_filter_agrees_with_regex(
            pats in proptest::collection::vec(proptest::collection::vec(
                proptest::sample::select(vec![
                    "/", "a", "b", "tmp", ".", ".*", "*", "[ab]", "(a|b)", "?", "+",
                    "{1,2}", "\\d", "(?i)", "A", "$", "|", "\\.", "(", ")", "[^a]",
                ]), 1..6), 1..4),
            paths in proptest::collection::vec(proptest::collection::vec(
                proptest::sample::select(b"/abAtmp.1x".to_vec()), 0..12), 1..20),
        ) {
            let pats: Vec<String> = pats.iter().map(|p| p.concat()).collect();
            if let Ok(e) = Excludes::new(&pats) {
                let re = e.re.as_ref().unwrap();
                for p in &paths {
                    proptest::prop_assert_eq!(e.matches(p), re.is_match(p), "{:?} {:?}", pats, p);
                }
            }
        }
    }
}
