//! RFC 8785 JSON Canonicalization Scheme (JCS) of a parsed [`Json`] value.
//!
//! A signed FHIR document's signature covers the JCS form of its Bundle without `signature`,
//! so every ingest and every `--signatures` re-verification canonicalizes a whole document.
//! `serde_jcs` gets the bytes right but re-parses every object key to sort it and boxes a
//! writer per scalar; on the dev corpus that was a third of a document's verification. This
//! writer walks the value once instead. It is checked against `serde_jcs`, kept as the oracle,
//! on random values (below) and against the RFC's own examples (`document`'s tests).
//!
//! The rules (RFC 8785 §3.2):
//! - no whitespace;
//! - object members sorted by their names' UTF-16 code units (§3.2.3), recursively;
//! - strings escaped as ECMAScript's `JSON.stringify` does: `\"`, `\\`, `\b \t \n \f \r`, other
//!   controls as `\u00xx` in lower case, everything else (including `/` and non-ASCII) as is;
//! - numbers as ECMAScript's `Number.prototype.toString` of the IEEE 754 double (§3.2.2.3),
//!   which `ryu-js` implements; a number no double holds exactly is rounded as JavaScript would.

use std::borrow::Cow;

use crate::json::Json;

/// The JCS bytes of `value`.
pub fn to_vec(value: &Json<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_value(value, &mut out);
    out
}

/// The JCS bytes of the object `members` without its member `skip` (a signed Bundle without
/// its `signature`), with no copy of the rest.
pub fn object_without(members: &[(Cow<'_, str>, Json<'_>)], skip: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_object(members, Some(skip), &mut out);
    out
}

fn write_value(value: &Json<'_>, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Number(n) => write_number(n, out),
        Json::String(s) => write_string(s, out),
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Json::Object(members) => write_object(members, None, out),
    }
}

fn write_object(members: &[(Cow<'_, str>, Json<'_>)], skip: Option<&str>, out: &mut Vec<u8>) {
    let mut members: Vec<&(Cow<'_, str>, Json<'_>)> = members
        .iter()
        .filter(|(k, _)| Some(k.as_ref()) != skip)
        .collect();
    members.sort_unstable_by(|(a, _), (b, _)| utf16_order(a, b));
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
}

/// Orders by UTF-16 code units (RFC 8785 §3.2.3), comparing the UTF-8 bytes.
///
/// UTF-8 byte order is code point order, and UTF-16 order differs from it only between a
/// character of U+E000..=U+FFFF (UTF-8 lead byte 0xEE or 0xEF) and one above U+FFFF (lead
/// byte 0xF0..=0xF4, a surrogate pair 0xD800.. in UTF-16, so it sorts first). Past an equal
/// prefix, the first differing bytes are both lead bytes or both in one character of the same
/// length, so only that one pair of lead bytes needs turning round.
pub(crate) fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) => {
            let (p, q) = (x[i], y[i]);
            let supplementary = |c: u8| c >= 0xf0;
            if p >= 0xee && q >= 0xee && supplementary(p) != supplementary(q) {
                // The one above U+FFFF comes first.
                supplementary(q).cmp(&supplementary(p))
            } else {
                p.cmp(&q)
            }
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    // Every JSON number is an IEEE 754 double in JCS (I-JSON, RFC 7493); a number that does
    // not fit one (only possible with serde_json's arbitrary precision) is written as its
    // nearest double, as serde_jcs does.
    write_double(n.as_f64().unwrap_or(f64::NAN), out);
}

/// A double as ECMAScript's `Number.prototype.toString` writes it (RFC 8785 §3.2.2.3).
pub(crate) fn write_double(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    } else {
        // serde_json never parses a non-finite number; write what JavaScript would.
        out.extend_from_slice(b"null");
    }
}

/// Index of the first byte at or after `from` that is `"`, `\` or a control character: the
/// bytes a JSON string must escape, and the only ones that end a run of plain text in one.
pub(crate) fn first_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    // Eight bytes at a time: a byte is flagged when it is below 0x20 or equal to 0x22 or 0x5C
    // (the usual "has a zero byte" trick; the lowest flag is always exact).
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let flags = zero(w & !(0x1f * ONES)) // below 0x20: nothing but the low 5 bits set
            | zero(w ^ (0x22 * ONES))
            | zero(w ^ (0x5c * ONES));
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|p| i + p)
}

/// A string as ECMAScript's `JSON.stringify` writes it (RFC 8785 §3.2.2.2).
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape at all: everything before the first byte that may is
    // copied as it is.
    let Some(clean) = first_to_escape(bytes, 0) else {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    };
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    /// The JCS of `v` as the verifier makes it: written out by serde_json, parsed as
    /// [`Json`], canonicalized.
    fn ours(v: &Value) -> Vec<u8> {
        let text = serde_json::to_vec(v).unwrap();
        to_vec(&Json::parse(&text).unwrap())
    }

    pub(crate) fn oracle(v: &Value) -> Vec<u8> {
        serde_jcs::to_vec(v).expect("serde_jcs")
    }

    /// Characters that exercise every escape and the UTF-16 order: controls, quote,
    /// backslash, solidus, ASCII, Japanese (BMP), U+FFFD and astral characters (surrogate
    /// pairs sort before U+E000..U+FFFF in UTF-16 but after them in UTF-8).
    const ALPHABET: &[char] = &[
        '\u{0}',
        '\u{8}',
        '\t',
        '\n',
        '\u{c}',
        '\r',
        '\u{1f}',
        '"',
        '\\',
        '/',
        'a',
        'Z',
        '0',
        ' ',
        '\u{7f}',
        'é',
        '処',
        '方',
        '\u{e000}',
        '\u{fffd}',
        '\u{10000}',
        '\u{1f600}',
    ];

    fn random_string(rng: &mut StdRng) -> String {
        (0..rng.random_range(0..6))
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect()
    }

    fn random_number(rng: &mut StdRng) -> Value {
        match rng.random_range(0..5) {
            0 => Value::from(rng.random::<i64>()),
            1 => Value::from(rng.random::<u64>()),
            2 => Value::from(rng.random_range(-1000i64..1000)),
            3 => {
                let bits = rng.random::<u64>();
                let f = f64::from_bits(bits);
                if f.is_finite() {
                    Value::from(f)
                } else {
                    Value::from(0.5)
                }
            }
            _ => Value::from(rng.random_range(-1e6..1e6) / 1e3),
        }
    }

    pub(crate) fn random_value(rng: &mut StdRng, depth: u32) -> Value {
        let leaf = depth == 0 || rng.random_bool(0.4);
        match rng.random_range(0..if leaf { 4 } else { 6 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.random()),
            2 => random_number(rng),
            3 => Value::String(random_string(rng)),
            4 => Value::Array(
                (0..rng.random_range(0..5))
                    .map(|_| random_value(rng, depth - 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.random_range(0..7))
                    .map(|_| (random_string(rng), random_value(rng, depth - 1)))
                    .collect(),
            ),
        }
    }

    /// 20,000 random values (seeded, StdRng seed 8785) canonicalize byte for byte as
    /// `serde_jcs` does them.
    #[test]
    fn matches_serde_jcs_on_random_values() {
        let mut rng = StdRng::seed_from_u64(8785);
        for i in 0..20_000 {
            let v = random_value(&mut rng, 4);
            assert_eq!(
                String::from_utf8_lossy(&ours(&v)),
                String::from_utf8_lossy(&oracle(&v)),
                "value {i}: {v}"
            );
        }
    }

    /// Byte comparison with the one turn-round gives UTF-16 order: every pair of strings of
    /// up to two characters from the alphabet and the boundaries of each UTF-8 length.
    #[test]
    fn utf16_order_agrees_with_utf16_code_units() {
        let mut chars = ALPHABET.to_vec();
        chars.extend([
            '\u{7ff}',
            '\u{800}',
            '\u{d7ff}',
            '\u{edff}',
            '\u{efff}',
            '\u{ffff}',
            '\u{10ffff}',
        ]);
        let mut strings = vec![String::new()];
        for &a in &chars {
            strings.push(a.to_string());
            for &b in &chars {
                strings.push([a, b].iter().collect());
            }
        }
        for a in &strings {
            for b in &strings {
                assert_eq!(
                    utf16_order(a, b),
                    a.encode_utf16().cmp(b.encode_utf16()),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn object_without_skips_only_that_top_level_member() {
        let v: Value = serde_json::from_str(
            r#"{"signature":{"x":1},"b":{"signature":2},"a":[{"signature":3}]}"#,
        )
        .expect("json");
        let text = serde_json::to_vec(&v).unwrap();
        let Json::Object(members) = Json::parse(&text).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            object_without(&members, "signature"),
            br#"{"a":[{"signature":3}],"b":{"signature":2}}"#
        );
        let mut without = v.clone();
        without.as_object_mut().map(|m| m.remove("signature"));
        assert_eq!(object_without(&members, "signature"), oracle(&without));
        assert_eq!(ours(&without), oracle(&without));
    }
}
