//! PEM blocks (RFC 7468) as OpenSSL writes them: any number per file, text between
//! them ignored, optional RFC 1421 headers (`Proc-Type`, `DEK-Info`) kept so a
//! legacy-encrypted key can be reported as such.

use base64::Engine;

/// One `-----BEGIN label-----` … `-----END label-----` block.
pub(crate) struct Block {
    pub label: String,
    pub headers: Vec<(String, String)>,
    pub der: Vec<u8>,
}

/// Whether `data` looks like PEM text rather than DER.
pub(crate) fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every block of `data`; a block whose body is not valid base64 is an error naming it.
pub(crate) fn blocks(data: &[u8]) -> Result<Vec<Block>, String> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == end {
                closed = true;
                break;
            }
            match line.split_once(':') {
                Some((k, v)) if body.is_empty() => {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => body.push_str(line),
            }
        }
        if !closed {
            return Err(format!("PEM block {label:?} has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("PEM block {label:?}: bad base64: {e}"))?;
        out.push(Block {
            label: label.to_owned(),
            headers,
            der,
        });
    }
    Ok(out)
}
