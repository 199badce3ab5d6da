//! PEM text ⇄ DER bytes.

use crate::error::CaError;

/// PEM text of `der` under `label`, 64 characters a line.
pub fn encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).expect("PEM label is valid")
}

/// Decodes the first PEM block of `text`.
pub fn decode(text: &str) -> Result<(String, Vec<u8>), CaError> {
    blocks(text)?
        .into_iter()
        .next()
        .ok_or_else(|| CaError::Pem("no PEM block found".into()))
}

/// Every PEM block of `text`, in order (a certificate chain file).
pub fn blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, CaError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or_else(|| CaError::Pem("unterminated BEGIN line".into()))?;
        let label = &after[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or_else(|| CaError::Pem(format!("no END line for {label}")))?;
        let block = &after[..end + end_marker.len()];
        let (l, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| CaError::Pem(e.to_string()))?;
        out.push((l.to_string(), der));
        rest = &after[end + end_marker.len()..];
    }
    Ok(out)
}

/// Every `CERTIFICATE` block of `text`, DER.
pub fn certificates(text: &str) -> Result<Vec<Vec<u8>>, CaError> {
    Ok(blocks(text)?
        .into_iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| d)
        .collect())
}
