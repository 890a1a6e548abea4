//! JSON text exactly as Python's `json.dumps(obj)` writes it with default arguments,
//! which is how Keylime writes runtime policies and DSSE envelopes: `", "` between
//! items, `": "` after keys, no newlines, and every character outside printable
//! ASCII escaped as `\uXXXX` (UTF-16 surrogate pairs above U+FFFF).

use std::io::{self, Write};

use serde::Serialize;

/// A `serde_json` formatter producing Python's default `json.dumps` layout.
#[derive(Debug, Default, Clone, Copy)]
pub struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json hands us runs without `"`, `\` and C0 controls; Python additionally
        // escapes DEL and everything non-ASCII (ensure_ascii=True).
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c == '\x7f' || !c.is_ascii() {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{:04x}", u)?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serialize `value` as Python's `json.dumps(value)` would.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    // Serializing our own data model into memory cannot fail.
    value
        .serialize(&mut ser)
        .expect("serializing to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_layout_and_escapes() {
        let v = serde_json::json!({"a": [1, "x"], "b": {"c": null}});
        assert_eq!(to_string(&v), r#"{"a": [1, "x"], "b": {"c": null}}"#);
        assert_eq!(
            to_string("é\u{7f}\n\t\u{1}/\"\\"),
            r#""\u00e9\u007f\n\t\u0001/\"\\""#
        );
        assert_eq!(to_string("\u{1F600}"), r#""\ud83d\ude00""#);
        assert_eq!(to_string(&Vec::<u8>::new()), "[]");
        assert_eq!(to_string(&serde_json::json!({})), "{}");
    }
}
