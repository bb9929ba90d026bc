//! A parsed JSON document that borrows from its bytes, for verifying signed documents.
//!
//! `serde_json::Value` (with the workspace's `preserve_order`) hashes every member name into
//! an index map and copies every string; on a 12 KB signed Bundle that was a fifth of a
//! document's verification, and the verifier only needs to walk the tree once for RFC 8785
//! (which sorts the members itself) and to read a few fields. [`Json`] keeps objects as
//! member lists in document order and strings as slices of the input where they have no
//! escapes. Numbers are `serde_json::Number`, so they read exactly as `Value`'s do.
//!
//! Duplicate member names are refused: I-JSON (RFC 7493 §2.3), which RFC 8785 requires, does
//! not allow them, and two parsers that pick different duplicates would see two different
//! documents under one signature.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value; strings borrow from the parsed bytes where they can.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` reads it.
    Number(serde_json::Number),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's members in document order (names are unique).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses `bytes` (one JSON text, as `serde_json::from_slice` accepts it, without
    /// duplicate member names).
    pub fn parse(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        // One UTF-8 check of the whole text, then serde_json's `str` reader, which does not
        // check each string again (`from_slice` does: that was a twentieth of an ingest).
        let text = std::str::from_utf8(bytes).map_err(|e| {
            <serde_json::Error as de::Error>::custom(format!(
                "not UTF-8 (RFC 8259 §8.1): invalid byte at offset {}",
                e.valid_up_to()
            ))
        })?;
        serde_json::from_str(text)
    }

    /// The member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// The first name that occurs twice among `members`, if any.
fn duplicate<'m, V>(members: &'m [(Cow<'_, str>, V)]) -> Option<&'m str> {
    if members.len() <= 16 {
        // Objects in FHIR documents are small: comparing pairs beats sorting.
        for (i, (a, _)) in members.iter().enumerate() {
            if members[i + 1..].iter().any(|(b, _)| a == b) {
                return Some(a);
            }
        }
        return None;
    }
    let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key::<Name<'de>>()? {
            members.push((name.0, map.next_value()?));
        }
        if let Some(name) = duplicate(&members) {
            return Err(de::Error::custom(format!(
                "duplicate member name {name:?} (I-JSON, RFC 7493 §2.3)"
            )));
        }
        Ok(Json::Object(members))
    }
}

/// A member name, borrowed when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = br#"{"a":"plain","b":"esc\"aped","c\u0041":[1,-2,3.5,1e400,null,true]}"#;
        let err = Json::parse(text).unwrap_err();
        // 1e400 is not a finite double: serde_json refuses it too.
        assert!(err.to_string().contains("number"), "{err}");
        let text = br#"{"a":"plain","b":"esc\"aped","c\u0041":[1,-2,3.5,null,true]}"#;
        let v = Json::parse(text).unwrap();
        assert!(matches!(
            v.get("a"),
            Some(Json::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(v.get("b"), Some(Json::String(Cow::Owned(s))) if s == "esc\"aped"));
        let arr = v.get("cA").and_then(Json::as_array).unwrap();
        assert_eq!(arr.len(), 5);
        assert_eq!(arr[0], Json::Number(1u64.into()));
        assert_eq!(arr[1], Json::Number((-2i64).into()));
        assert_eq!(arr[3], Json::Null);
        assert_eq!(v.get("missing"), None);
        assert_eq!(arr[0].get("a"), None);
    }

    #[test]
    fn duplicate_names_are_refused_at_any_depth_and_size() {
        for text in [
            r#"{"a":1,"a":2}"#.to_owned(),
            r#"{"x":{"b":1,"c":2,"b":3}}"#.to_owned(),
            r#"[{"\u0061":1,"a":2}]"#.to_owned(),
            format!(
                "{{{}}}",
                (0..40)
                    .map(|i| format!("\"k{}\":{i}", i % 39))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ] {
            let err = Json::parse(text.as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains("duplicate member name"),
                "{text}: {err}"
            );
        }
        let unique = format!(
            "{{{}}}",
            (0..40)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(Json::parse(unique.as_bytes()).is_ok());
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_its_offset() {
        // A lone continuation byte, an overlong "/", a surrogate encoded in UTF-8, and a
        // truncated sequence at the end; each inside a string, where JSON allows any text.
        for (text, at) in [
            (&b"{\"a\":\"x\x80\"}"[..], 7),
            (b"[\"\xC0\xAF\"]", 2),
            (b"[\"ok\",\"\xED\xA0\x80\"]", 7),
            (b"\"\xE3\x81", 1),
        ] {
            let err = Json::parse(text).unwrap_err().to_string();
            assert!(
                err.contains("not UTF-8") && err.contains(&format!("offset {at}")),
                "{text:?}: {err}"
            );
            assert!(serde_json::from_slice::<serde_json::Value>(text).is_err());
        }
    }

    #[test]
    fn what_serde_json_refuses_is_refused() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "\"\\x\"",
            "[1] 2",
            "nul",
        ] {
            assert!(Json::parse(text.as_bytes()).is_err(), "{text:?}");
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
        }
    }
}
