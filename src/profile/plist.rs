//! A minimal XML property-list writer (Apple's configuration profile format).

use base64::Engine;

/// A property-list value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Bool(bool),
    Data(Vec<u8>),
    Array(Vec<Value>),
    /// Keys in the order given.
    Dict(Vec<(String, Value)>),
}

pub fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn write(v: &Value, indent: usize, out: &mut String) {
    let pad = "\t".repeat(indent);
    match v {
        Value::String(t) => out.push_str(&format!("{pad}<string>{}</string>\n", escape(t))),
        Value::Integer(i) => out.push_str(&format!("{pad}<integer>{i}</integer>\n")),
        Value::Bool(true) => out.push_str(&format!("{pad}<true/>\n")),
        Value::Bool(false) => out.push_str(&format!("{pad}<false/>\n")),
        Value::Data(d) => {
            out.push_str(&format!("{pad}<data>\n"));
            let b64 = base64::engine::general_purpose::STANDARD.encode(d);
            for line in b64.as_bytes().chunks(64) {
                out.push_str(&format!(
                    "{pad}{}\n",
                    std::str::from_utf8(line).expect("base64 is ASCII")
                ));
            }
            out.push_str(&format!("{pad}</data>\n"));
        }
        Value::Array(items) => {
            out.push_str(&format!("{pad}<array>\n"));
            for item in items {
                write(item, indent + 1, out);
            }
            out.push_str(&format!("{pad}</array>\n"));
        }
        Value::Dict(entries) => {
            out.push_str(&format!("{pad}<dict>\n"));
            for (k, item) in entries {
                out.push_str(&format!("{pad}\t<key>{}</key>\n", escape(k)));
                write(item, indent + 1, out);
            }
            out.push_str(&format!("{pad}</dict>\n"));
        }
    }
}

/// The XML document for `root`.
pub fn to_xml(root: &Value) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n",
    );
    write(root, 0, &mut out);
    out.push_str("</plist>\n");
    out
}

/// A random (version 4) UUID, upper case as Apple writes them.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let xml = to_xml(&dict(vec![
            ("a<b", s("x&y")),
            ("n", Value::Integer(2)),
            ("l", Value::Array(vec![Value::Bool(true)])),
        ]));
        assert!(
            xml.contains("<key>a&lt;b</key>") && xml.contains("<string>x&amp;y</string>") && xml.contains("<true/>")
        );
        assert_eq!(uuid().len(), 36);
        assert_ne!(uuid(), uuid());
    }
}
