//! BER → DER normalization for what clients send.
//!
//! SCEP clients send BER: OpenSSL's `-stream` and NSS (certmonger) use indefinite lengths, and
//! several clients chunk the eContent OCTET STRING into a constructed string. der 0.8 only
//! partly reads BER (it rejects constructed definite-length strings and nested constructed
//! strings), so every incoming structure is first rewritten here into DER-shaped bytes: definite
//! lengths, primitive strings. Element order is kept (a SET is not re-sorted), so the bytes
//! a client signed — its signed attributes, its CSR's CertificationRequestInfo — come through
//! unchanged when the client encoded them in DER, as CMS and PKCS#10 require.
//!
//! Nesting is bounded ([`MAX_DEPTH`]) so that hostile input cannot exhaust the stack.

use thiserror::Error;

/// Deeper than any real SCEP message (about 12 levels) with room to spare; each level costs a
/// copy of its content, so the bound also bounds the work.
pub const MAX_DEPTH: usize = 24;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BerError {
    #[error("truncated or over-long element")]
    Truncated,
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("unsupported tag or length form")]
    Unsupported,
    #[error("trailing bytes after the outer element")]
    Trailing,
}

/// One element: its identifier octets, whether it is constructed, and its content.
struct Element<'a> {
    tag: &'a [u8],
    constructed: bool,
    content: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the number of bytes it used.
/// For an indefinite length, `content` runs to (and excludes) the end-of-contents octets.
fn read_element(input: &[u8], depth: usize) -> Result<(Element<'_>, usize), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let first = *input.first().ok_or(BerError::Truncated)?;
    let mut pos = 1;
    if first & 0x1f == 0x1f {
        // High tag number form: continuation bytes have the top bit set.
        loop {
            let b = *input.get(pos).ok_or(BerError::Truncated)?;
            pos += 1;
            if pos > 6 {
                return Err(BerError::Unsupported);
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let tag = &input[..pos];
    let constructed = first & 0x20 != 0;
    let len_byte = *input.get(pos).ok_or(BerError::Truncated)?;
    pos += 1;
    if len_byte == 0x80 {
        if !constructed {
            return Err(BerError::Unsupported);
        }
        // Indefinite: walk the children to find the end-of-contents marker.
        let start = pos;
        loop {
            let rest = input.get(pos..).ok_or(BerError::Truncated)?;
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let content = &input[start..pos];
                return Ok((
                    Element {
                        tag,
                        constructed,
                        content,
                    },
                    pos + 2,
                ));
            }
            let (_, used) = read_element(rest, depth + 1)?;
            pos += used;
        }
    }
    let len = if len_byte & 0x80 == 0 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n > 4 {
            return Err(BerError::Truncated);
        }
        let bytes = input.get(pos..pos + n).ok_or(BerError::Truncated)?;
        pos += n;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let end = pos.checked_add(len).ok_or(BerError::Truncated)?;
    let content = input.get(pos..end).ok_or(BerError::Truncated)?;
    Ok((
        Element {
            tag,
            constructed,
            content,
        },
        end,
    ))
}

/// Universal string types that BER allows in constructed (chunked) form.
fn is_string_tag(tag: &[u8]) -> bool {
    // Compare the tag number with the constructed bit masked off; only universal class.
    // (Not BIT STRING: each of its chunks starts with an unused-bits byte; none appears in SCEP.)
    matches!(tag, [t] if t & 0xc0 == 0 && matches!(t & 0x1f, 0x04 | 0x0c | 0x13 | 0x14 | 0x16 | 0x1a | 0x1e))
}

/// Appends a DER length.
pub fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Concatenates the primitive chunks of a constructed string, at any nesting depth.
fn join_chunks(content: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), BerError> {
    let mut rest = content;
    while !rest.is_empty() {
        let (el, used) = read_element(rest, depth + 1)?;
        if el.constructed {
            join_chunks(el.content, depth + 1, out)?;
        } else {
            out.extend_from_slice(el.content);
        }
        rest = &rest[used..];
    }
    Ok(())
}

fn normalize_into(input: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<usize, BerError> {
    let (el, used) = read_element(input, depth)?;
    if el.constructed && is_string_tag(&[el.tag[0] & !0x20]) && el.tag.len() == 1 {
        // A chunked string: emit it as one primitive string.
        let mut joined = Vec::with_capacity(el.content.len());
        join_chunks(el.content, depth, &mut joined)?;
        out.push(el.tag[0] & !0x20);
        push_length(out, joined.len());
        out.extend_from_slice(&joined);
    } else if el.constructed {
        let mut inner = Vec::with_capacity(el.content.len());
        let mut rest = el.content;
        while !rest.is_empty() {
            let n = normalize_into(rest, depth + 1, &mut inner)?;
            rest = &rest[n..];
        }
        out.extend_from_slice(el.tag);
        push_length(out, inner.len());
        out.extend_from_slice(&inner);
    } else {
        out.extend_from_slice(el.tag);
        push_length(out, el.content.len());
        out.extend_from_slice(el.content);
    }
    Ok(used)
}

/// Rewrites one BER element (and everything inside it) as DER-shaped bytes.
/// Bytes after the element are an error: a SCEP body is exactly one message.
pub fn normalize(input: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut out = Vec::with_capacity(input.len());
    let used = normalize_into(input, 0, &mut out)?;
    if input[used..].iter().any(|b| *b != 0) {
        return Err(BerError::Trailing);
    }
    Ok(out)
}

/// The children of a DER constructed element, as raw TLV slices. For reading the exact bytes
/// a client signed (signed attributes, CertificationRequestInfo) without re-encoding them.
pub fn children(der: &[u8]) -> Result<Vec<&[u8]>, BerError> {
    let (el, _) = read_element(der, 0)?;
    let mut out = Vec::new();
    let mut rest = el.content;
    while !rest.is_empty() {
        let (_, used) = read_element(rest, 1)?;
        out.push(&rest[..used]);
        rest = &rest[used..];
    }
    Ok(out)
}

/// The bytes of a string element, primitive or constructed (chunks joined), whatever its tag:
/// for an IMPLICIT-tagged OCTET STRING, which the normalizer cannot recognise by its tag.
pub fn string_content(der: &[u8]) -> Result<Vec<u8>, BerError> {
    let (el, _) = read_element(der, 0)?;
    if !el.constructed {
        return Ok(el.content.to_vec());
    }
    let mut out = Vec::with_capacity(el.content.len());
    join_chunks(el.content, 0, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_and_chunked_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        assert_eq!(normalize(&ber).unwrap(), vec![0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']);
    }

    #[test]
    fn nested_constructed_strings_and_definite_constructed() {
        // OCTET STRING (constructed, definite) { OCTET STRING (constructed) { "x" }, "y" }
        let ber = [0x24, 0x08, 0x24, 0x03, 0x04, 0x01, b'x', 0x04, 0x01, b'y'];
        assert_eq!(normalize(&ber).unwrap(), vec![0x04, 0x02, b'x', b'y']);
    }

    #[test]
    fn long_lengths_are_reencoded_minimally() {
        let mut ber = vec![0x04, 0x83, 0x00, 0x00, 0x05];
        ber.extend_from_slice(b"hello");
        assert_eq!(normalize(&ber).unwrap(), [&[0x04, 0x05][..], b"hello"].concat());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        assert_eq!(normalize(&[]), Err(BerError::Truncated));
        assert_eq!(
            normalize(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]),
            Err(BerError::Truncated)
        );
        assert_eq!(normalize(&[0x30, 0x80, 0x04, 0x01]), Err(BerError::Truncated));
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 10_000).flatten().collect();
        assert_eq!(normalize(&deep), Err(BerError::TooDeep));
        assert_eq!(normalize(&[0x04, 0x01, 0x00, 0x05]), Err(BerError::Trailing));
    }

    #[test]
    fn implicit_string_content() {
        // [0] IMPLICIT OCTET STRING, constructed (Go's pkcs7 writes encryptedContent so).
        assert_eq!(
            string_content(&[0xa0, 0x07, 0x04, 0x02, 1, 2, 0x04, 0x01, 3]).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(string_content(&[0x80, 0x02, 1, 2]).unwrap(), vec![1, 2]);
    }

    #[test]
    fn children_are_raw_slices() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0x07];
        assert_eq!(
            children(&der).unwrap(),
            vec![&[0x02, 0x01, 0x05][..], &[0x04, 0x01, 0x07][..]]
        );
    }
}
