//! Rewrites DER as the BER that streaming encoders send: every constructed element with an
//! indefinite length, every OCTET STRING longer than `chunk` split into a constructed string.

fn read(input: &[u8]) -> (u8, usize, usize) {
    // (tag, header length, content length) of a DER element with a one-byte tag.
    let tag = input[0];
    let first = input[1];
    if first < 0x80 {
        return (tag, 2, first as usize);
    }
    let n = (first & 0x7f) as usize;
    let len = input[2..2 + n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
    (tag, 2 + n, len)
}

fn definite(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    scepd::scep::ber::push_length(out, content.len());
    out.extend_from_slice(content);
}

pub fn streamed(der: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, hl, len) = read(rest);
        let content = &rest[hl..hl + len];
        if tag & 0x20 != 0 {
            out.extend_from_slice(&[tag, 0x80]);
            out.extend_from_slice(&streamed(content, chunk));
            out.extend_from_slice(&[0, 0]);
        } else if tag == 0x04 && content.len() > chunk {
            out.extend_from_slice(&[0x24, 0x80]);
            for piece in content.chunks(chunk) {
                definite(&mut out, 0x04, piece);
            }
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&rest[..hl + len]);
        }
        rest = &rest[hl + len..];
    }
    out
}
