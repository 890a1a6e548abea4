//! The kernel's normalised form (`ima_policy_show`), byte for byte: one line per rule,
//! fields in the kernel's fixed order, each followed by a space.

use std::fmt::{self, Write};

use super::{algos_from_bits, IdCond, LsmField, Policy, Rule, MASK_NAMES};

/// The kernel prints `fsname=`/`fs_subtype=` through a 64-byte buffer.
fn truncated(s: &str) -> &str {
    if s.len() <= 63 {
        return s;
    }
    let mut end = 63;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn id(f: &mut impl Write, key: &str, c: IdCond, loadable: bool) -> fmt::Result {
    if loadable {
        write!(f, "{key}{}{} ", c.op.symbol(), c.value)
    } else {
        // `%d` of a kuid_t: ids above 2^31-1 come out negative, as in the kernel.
        write!(f, "{key}{}{} ", c.op.symbol(), c.value as i32)
    }
}

/// A rule printed in a form the kernel accepts back (see [`Rule::loadable`]).
pub struct Loadable<'a>(&'a Rule);

impl Rule {
    /// The rule in the kernel's normalised form, except where that form cannot be
    /// loaded again: `digest_type=verity` comes before `appraise_type=` (the kernel
    /// prints it after, but refuses that order), ids above 2^31-1 are printed unsigned
    /// and `fsname=`/`fs_subtype=` are not truncated.
    pub fn loadable(&self) -> Loadable<'_> {
        Loadable(self)
    }
}

impl fmt::Display for Loadable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

impl fmt::Display for Rule {
    /// One rule exactly as the kernel prints it, without the trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl Rule {
    fn write(&self, f: &mut fmt::Formatter<'_>, loadable: bool) -> fmt::Result {
        let cut = |s: &'_ str| {
            if loadable {
                s.to_owned()
            } else {
                truncated(s).to_owned()
            }
        };
        f.write_str(self.action.token())?;
        f.write_char(' ')?;
        if let Some(func) = self.func {
            write!(f, "func={} ", func.name())?;
        }
        if let Some(m) = self.mask {
            for (bit, name) in MASK_NAMES {
                if m.bit & bit != 0 {
                    write!(f, "mask={}{name}", if m.any { "^" } else { "" })?;
                }
            }
            f.write_char(' ')?;
        }
        if let Some(m) = self.fsmagic {
            write!(f, "fsmagic=0x{m:x} ")?;
        }
        if let Some(n) = &self.fsname {
            write!(f, "fsname={} ", cut(n))?;
        }
        if let Some(n) = &self.fs_subtype {
            write!(f, "fs_subtype={} ", cut(n))?;
        }
        if let Some(k) = &self.keyrings {
            write!(f, "keyrings={} ", k.join("|"))?;
        }
        if let Some(l) = &self.label {
            write!(f, "label={} ", l.join("|"))?;
        }
        if let Some(p) = self.pcr {
            write!(f, "pcr={p} ")?;
        }
        if let Some(u) = self.fsuuid {
            let h = hex::encode(u);
            write!(
                f,
                "fsuuid={}-{}-{}-{}-{} ",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )?;
        }
        if let Some(u) = self.uid {
            id(
                f,
                if u.effective { "euid" } else { "uid" },
                u.cond,
                loadable,
            )?;
        }
        if let Some(g) = self.gid {
            id(
                f,
                if g.effective { "egid" } else { "gid" },
                g.cond,
                loadable,
            )?;
        }
        if let Some(c) = self.fowner {
            id(f, "fowner", c, loadable)?;
        }
        if let Some(c) = self.fgroup {
            id(f, "fgroup", c, loadable)?;
        }
        if let Some(bits) = self.appraise_algos {
            let names: Vec<&str> = algos_from_bits(bits).iter().map(|a| a.name()).collect();
            write!(f, "appraise_algos={} ", names.join(","))?;
        }
        for field in LsmField::ALL {
            if let Some(v) = &self.lsm[field as usize] {
                write!(f, "{}={v} ", field.keyword())?;
            }
        }
        if let Some(t) = self.template {
            write!(f, "template={t} ")?;
        }
        if loadable && self.digest_verity {
            f.write_str("digest_type=verity ")?;
        }
        if let Some(t) = self.appraise_type() {
            write!(f, "appraise_type={} ", t.token())?;
        }
        if !loadable && self.digest_verity {
            f.write_str("digest_type=verity ")?;
        }
        if self.permit_directio {
            f.write_str("permit_directio ")?;
        }
        Ok(())
    }
}

impl Policy {
    /// The policy exactly as `cat /sys/kernel/security/ima/policy` shows it.
    pub fn to_kernel_string(&self) -> String {
        let mut s = String::new();
        for r in &self.rules {
            // Writing to a String cannot fail.
            let _ = writeln!(s, "{r}");
        }
        s
    }

    /// The policy in a form the kernel (and [`super::parse`]) accepts back with the
    /// same rules; see [`Rule::loadable`].
    pub fn to_loadable_string(&self) -> String {
        let mut s = String::new();
        for r in &self.rules {
            let _ = writeln!(s, "{}", r.loadable());
        }
        s
    }
}
