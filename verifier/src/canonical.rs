//! RFC 8785 (JCS) straight from JSON text: one pass over the text, no tree.
//!
//! Verifying a signed document needs the JCS bytes of its whole Bundle (without `signature`)
//! and four small fields. Parsing the text into a [`Json`](crate::json::Json) tree and then
//! writing the tree out was a quarter of a `--signatures` document's CPU (perf, 10,000 signed
//! documents): an allocation per object, array and escaped string, and every byte walked
//! twice. [`canonicalize`] writes the JCS form of every token while it reads: strings without
//! escapes and integers are copied as they are (their JCS form is their text), and an
//! object's members are written in the order they came. When an object closes, its members
//! are sorted as spans of that output; the output is put in order once, at the end, by one
//! walk that copies each byte once and copies an object whose members and descendants were
//! all in order whole. (Reordering each object in place when it closed copied a byte once
//! per enclosing object out of order, and FHIR puts `resourceType` first in almost every
//! object.) The fields the caller wants are picked out on the way by a [`Watch`], as slices
//! of the text.
//!
//! It accepts exactly the texts [`Json::parse`](crate::json::Json::parse) accepts (RFC 8259
//! JSON in UTF-8, I-JSON's unique member names, finite numbers, at most [`MAX_DEPTH`] nested
//! arrays and objects) and writes what [`crate::jcs::to_vec`] writes for them; the tests
//! hold it to both, and to `serde_jcs`, on random values and random damage. One deliberate
//! difference: a number is read with correct rounding (Rust's `f64::from_str`), which
//! `serde_json` without its `float_roundtrip` feature does not promise in rare cases.

use std::borrow::Cow;

use crate::jcs::{first_to_escape, utf16_order, write_double, write_string};

/// `serde_json`'s recursion limit: at most `MAX_DEPTH - 1` arrays and objects nested.
pub const MAX_DEPTH: usize = 128;

/// Why a text is not one I-JSON value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct SyntaxError {
    /// What is wrong.
    pub what: String,
    /// Where in the text (the start of the offending token).
    pub offset: usize,
}

/// Picks values out of the text while it is canonicalized.
///
/// A watch gives every value a state: the root gets [`Watch::root`], a member of an object in
/// state `s` gets [`Watch::member`]`(s, name)`, an element of an array in state `s` gets
/// [`Watch::element`]`(s, index)`. State 0 means "nothing in here is wanted": its members and
/// elements are not asked about. When a value in another state ends, [`Watch::value`] gets
/// its text (an object's or array's whole text, a string with its quotes).
pub trait Watch<'a> {
    /// The state of the root value.
    fn root(&mut self) -> u32;
    /// The state of member `name` (unescaped) of an object in state `parent`.
    fn member(&mut self, parent: u32, name: &str) -> u32;
    /// The state of element `index` of an array in state `parent`.
    fn element(&mut self, parent: u32, index: usize) -> u32;
    /// A value in state `state` (not 0) ended; `text` is its JSON text.
    fn value(&mut self, state: u32, text: &'a str);
}

/// A watch that wants nothing.
impl Watch<'_> for () {
    fn root(&mut self) -> u32 {
        0
    }
    fn member(&mut self, _: u32, _: &str) -> u32 {
        0
    }
    fn element(&mut self, _: u32, _: usize) -> u32 {
        0
    }
    fn value(&mut self, _: u32, _: &str) {}
}

/// The JCS bytes of the JSON text `bytes`, without the root object's member `skip` if it has
/// one (a signed Bundle without its `signature`); `watch` is shown the values it asks for.
pub fn canonicalize<'a>(
    bytes: &'a [u8],
    skip: Option<&str>,
    watch: &mut impl Watch<'a>,
) -> Result<Vec<u8>, SyntaxError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SyntaxError {
        what: "not UTF-8 (RFC 8259 §8.1): invalid byte".into(),
        offset: e.valid_up_to(),
    })?;
    let mut c = Canonicalizer {
        text,
        bytes,
        pos: 0,
        out: Vec::with_capacity(bytes.len()),
        members: Vec::new(),
        frames: Vec::new(),
        objects: Vec::new(),
        spans: Vec::new(),
        dirty: false,
    };
    c.run(skip, watch)?;
    if !c.dirty {
        return Ok(c.out);
    }
    let mut ordered = Vec::with_capacity(c.out.len());
    c.emit(0, c.out.len(), 0, &mut ordered);
    Ok(ordered)
}

/// An open array or object.
struct Frame {
    /// For an object, its index in `objects`; `None` for an array.
    object: Option<usize>,
    /// Where its members start in `members` (objects).
    members: usize,
    /// Elements so far (arrays).
    count: usize,
    /// Its watch state, and where its text starts.
    state: u32,
    start: usize,
    /// Whether an object in it must be written in another order than the output's.
    dirty: bool,
}

/// An object written to the output, in the order objects were opened (so by `start`).
struct Object {
    /// Where its `{` is in the output, and where its `}` ends.
    start: usize,
    end: usize,
    /// The index in `objects` past its descendants.
    next: usize,
    /// Whether it, or an object in it, must be written in another order than the output's.
    dirty: bool,
    /// Its members in JCS order, in `spans` (dirty objects only).
    members: std::ops::Range<usize>,
}

/// A member `"name":value` of a dirty object in the output, and the index in `objects` of
/// the first object at or after its start.
struct Span {
    start: usize,
    end: usize,
    first: usize,
}

/// One member of an open object: its name, where `"name":value` lies in the output, and the
/// index in `objects` of the first object opened after it started.
struct Member<'a> {
    name: Cow<'a, str>,
    start: usize,
    end: usize,
    first: usize,
}

struct Canonicalizer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    /// The members of every open object, innermost last.
    members: Vec<Member<'a>>,
    frames: Vec<Frame>,
    /// Every object so far, in the order they were opened.
    objects: Vec<Object>,
    /// The members of dirty objects, each object's in JCS order.
    spans: Vec<Span>,
    /// Whether the output must be put in order at the end.
    dirty: bool,
}

impl<'a> Canonicalizer<'a> {
    fn error<T>(&self, what: impl Into<String>, offset: usize) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            what: what.into(),
            offset,
        })
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn run(&mut self, skip: Option<&str>, watch: &mut impl Watch<'a>) -> Result<(), SyntaxError> {
        // The watch state and text start of the value about to be read.
        let mut state = watch.root();
        'value: loop {
            self.skip_ws();
            let mut start = self.pos;
            match self.bytes.get(start) {
                Some(b'{') | Some(b'[') => {
                    if self.frames.len() + 1 >= MAX_DEPTH {
                        return self.error("nested too deeply", start);
                    }
                    let object = (self.bytes[start] == b'{').then_some(self.objects.len());
                    if object.is_some() {
                        self.objects.push(Object {
                            start: self.out.len(),
                            end: 0,
                            next: 0,
                            dirty: false,
                            members: 0..0,
                        });
                    }
                    self.out.push(self.bytes[start]);
                    self.pos += 1;
                    self.frames.push(Frame {
                        object,
                        members: self.members.len(),
                        count: 0,
                        state,
                        start,
                        dirty: false,
                    });
                    self.skip_ws();
                    let close = if object.is_some() { b'}' } else { b']' };
                    if self.bytes.get(self.pos) != Some(&close) {
                        state = self.open_item(watch)?;
                        continue 'value;
                    }
                    // Empty: closed just below.
                }
                Some(b'"') => {
                    let s = self.string()?;
                    self.write_str(&s, matches!(s, Cow::Borrowed(_)));
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.error("expected a value", start),
                None => return self.error("expected a value, found the end", start),
            }
            // A value ended (a scalar, or an empty array or object about to close). Close
            // every container it ends, innermost first, until one goes on with another item.
            let mut scalar = !matches!(self.bytes.get(start), Some(b'{' | b'['));
            loop {
                if scalar {
                    if state != 0 {
                        watch.value(state, &self.text[start..self.pos]);
                    }
                } else {
                    // The innermost open container is at its closing bracket.
                    let frame = self.frames.pop().expect("an open container");
                    self.pos += 1;
                    self.close(&frame, skip)?;
                    (state, start) = (frame.state, frame.start);
                    if state != 0 {
                        watch.value(state, &self.text[start..self.pos]);
                    }
                }
                let Some(frame) = self.frames.last() else {
                    self.skip_ws();
                    if self.pos != self.bytes.len() {
                        return self.error("text after the value", self.pos);
                    }
                    return Ok(());
                };
                let object = frame.object.is_some();
                if object {
                    let end = self.out.len();
                    if let Some(m) = self.members.last_mut() {
                        m.end = end;
                    }
                }
                self.skip_ws();
                match self.bytes.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        self.out.push(b',');
                        self.skip_ws();
                        state = self.open_item(watch)?;
                        continue 'value;
                    }
                    Some(b'}') if object => scalar = false,
                    Some(b']') if !object => scalar = false,
                    _ => {
                        let what = if object {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        };
                        return self.error(what, self.pos);
                    }
                }
            }
        }
    }

    /// Starts the next item of the innermost container: an element, or a member's name and
    /// colon. Returns the item's watch state.
    fn open_item(&mut self, watch: &mut impl Watch<'a>) -> Result<u32, SyntaxError> {
        let frame = self.frames.last_mut().expect("an open container");
        let parent = frame.state;
        if frame.object.is_none() {
            let index = frame.count;
            frame.count += 1;
            return Ok(if parent == 0 {
                0
            } else {
                watch.element(parent, index)
            });
        }
        let start = self.out.len();
        if self.bytes.get(self.pos) != Some(&b'"') {
            return self.error("expected a member name", self.pos);
        }
        let name = self.string()?;
        self.write_str(&name, matches!(name, Cow::Borrowed(_)));
        self.skip_ws();
        if self.bytes.get(self.pos) != Some(&b':') {
            return self.error("expected ':'", self.pos);
        }
        self.pos += 1;
        self.out.push(b':');
        let state = if parent == 0 {
            0
        } else {
            watch.member(parent, &name)
        };
        self.members.push(Member {
            name,
            start,
            end: start,
            first: self.objects.len(),
        });
        Ok(state)
    }

    /// Closes `frame` (its closing bracket read): writes the bracket, and for an object puts
    /// its members in JCS order (RFC 8785 §3.2.3), refusing duplicate names, and leaves out
    /// `skip` at the root. An object whose order differs from the output's marks itself and
    /// every container around it dirty, for [`Canonicalizer::emit`].
    fn close(&mut self, frame: &Frame, skip: Option<&str>) -> Result<(), SyntaxError> {
        let mut dirty = frame.dirty;
        if let Some(index) = frame.object {
            let skip = if self.frames.is_empty() { skip } else { None };
            let members = &mut self.members[frame.members..];
            let in_order = members
                .windows(2)
                .all(|w| utf16_order(&w[0].name, &w[1].name).is_lt());
            let skipped = skip.is_some_and(|s| members.iter().any(|m| m.name == s));
            if !in_order {
                members.sort_unstable_by(|a, b| utf16_order(&a.name, &b.name));
                if let Some(w) = members.windows(2).find(|w| w[0].name == w[1].name) {
                    let name = w[0].name.to_string();
                    return self.error(
                        format!("duplicate member name {name:?} (I-JSON, RFC 7493 §2.3)"),
                        frame.start,
                    );
                }
            }
            dirty |= !in_order || skipped;
            self.out.push(b'}');
            let from = self.spans.len();
            if dirty {
                let kept = members.iter().filter(|m| skip.is_none_or(|s| m.name != s));
                self.spans.extend(kept.map(|m| Span {
                    start: m.start,
                    end: m.end,
                    first: m.first,
                }));
            }
            let (end, next) = (self.out.len(), self.objects.len());
            let object = &mut self.objects[index];
            object.end = end;
            object.next = next;
            object.dirty = dirty;
            object.members = from..self.spans.len();
            self.members.truncate(frame.members);
        } else {
            self.out.push(b']');
        }
        if dirty {
            match self.frames.last_mut() {
                Some(parent) => parent.dirty = true,
                None => self.dirty = true,
            }
        }
        Ok(())
    }

    /// Writes `out[from..to]` in JCS order to `to_buf`; `object` is the index of the first
    /// object at or after `from`.
    fn emit(&self, from: usize, to: usize, mut object: usize, to_buf: &mut Vec<u8>) {
        let mut at = from;
        while let Some(o) = self.objects.get(object).filter(|o| o.start < to) {
            to_buf.extend_from_slice(&self.out[at..o.start]);
            if o.dirty {
                to_buf.push(b'{');
                for (i, m) in self.spans[o.members.clone()].iter().enumerate() {
                    if i > 0 {
                        to_buf.push(b',');
                    }
                    self.emit(m.start, m.end, m.first, to_buf);
                }
                to_buf.push(b'}');
            } else {
                to_buf.extend_from_slice(&self.out[o.start..o.end]);
            }
            at = o.end;
            object = o.next;
        }
        to_buf.extend_from_slice(&self.out[at..to]);
    }

    /// Writes a string's JCS form: its text when it had no escapes (borrowed from the text:
    /// nothing in it needs one), otherwise re-escaped.
    fn write_str(&mut self, s: &str, unescaped: bool) {
        if unescaped {
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        } else {
            write_string(s, &mut self.out);
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            self.out.extend_from_slice(word);
            Ok(())
        } else {
            self.error("expected a value", self.pos)
        }
    }

    /// Reads a string (at its opening quote): borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        let open = self.pos;
        let start = open + 1;
        let Some(mut i) = first_to_escape(self.bytes, start) else {
            return self.error("unterminated string", open);
        };
        if self.bytes[i] == b'"' {
            self.pos = i + 1;
            return Ok(Cow::Borrowed(&self.text[start..i]));
        }
        let mut s = String::from(&self.text[start..i]);
        loop {
            match self.bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Cow::Owned(s));
                }
                b'\\' => {
                    let (c, len) = self.escape(i)?;
                    s.push(c);
                    i += len;
                }
                _ => return self.error("control character in a string", i),
            }
            match first_to_escape(self.bytes, i) {
                Some(j) => {
                    s.push_str(&self.text[i..j]);
                    i = j;
                }
                None => return self.error("unterminated string", open),
            }
        }
    }

    /// The character an escape at `at` (its backslash) stands for, and the escape's length.
    fn escape(&self, at: usize) -> Result<(char, usize), SyntaxError> {
        let c = match self.bytes.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = self.hex4(at + 2)?;
                if (0xdc00..0xe000).contains(&unit) {
                    return self.error("lone trailing surrogate in a \\u escape", at);
                }
                if !(0xd800..0xdc00).contains(&unit) {
                    return Ok((char::from_u32(unit).expect("not a surrogate"), 6));
                }
                if self.bytes.get(at + 6..at + 8) != Some(b"\\u") {
                    return self.error("lone leading surrogate in a \\u escape", at);
                }
                let low = self.hex4(at + 8)?;
                if !(0xdc00..0xe000).contains(&low) {
                    return self.error("lone leading surrogate in a \\u escape", at);
                }
                let c = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                return Ok((char::from_u32(c).expect("a supplementary character"), 12));
            }
            _ => return self.error("invalid escape", at),
        };
        Ok((c, 2))
    }

    fn hex4(&self, at: usize) -> Result<u32, SyntaxError> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit));
        match digits {
            Some(d) => Ok(d
                .iter()
                .fold(0, |n, &b| n * 16 + char::from(b).to_digit(16).unwrap_or(0))),
            None => self.error("invalid \\u escape", at),
        }
    }

    /// Reads a number (RFC 8259 §6) and writes its JCS form (RFC 8785 §3.2.2.3).
    fn number(&mut self) -> Result<(), SyntaxError> {
        let start = self.pos;
        let digits = |c: &Self, mut i: usize| {
            while c.bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = start + usize::from(self.bytes[start] == b'-');
        match self.bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(self, i),
            _ => return self.error("invalid number", start),
        }
        let integer = i;
        if self.bytes.get(i) == Some(&b'.') {
            let after = digits(self, i + 1);
            if after == i + 1 {
                return self.error("invalid number", start);
            }
            i = after;
        }
        if let Some(b'e' | b'E') = self.bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = self.bytes.get(i) {
                i += 1;
            }
            let after = digits(self, i);
            if after == i {
                return self.error("invalid number", start);
            }
            i = after;
        }
        self.pos = i;
        let text = &self.text[start..i];
        // An integer of at most 15 digits is a double exactly, and JavaScript writes it as
        // it is written here (JSON allows no leading zeros), except minus zero.
        if i == integer && text.len() - usize::from(text.starts_with('-')) <= 15 {
            if text == "-0" {
                self.out.push(b'0');
            } else {
                self.out.extend_from_slice(text.as_bytes());
            }
            return Ok(());
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                write_double(f, &mut self.out);
                Ok(())
            }
            _ => self.error("number out of range (not a finite double)", start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jcs::tests::{oracle, random_value};
    use crate::json::Json;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    fn jcs(text: &[u8]) -> Result<Vec<u8>, SyntaxError> {
        canonicalize(text, None, &mut ())
    }

    /// The tree path's answer: `Json::parse`, then `jcs::to_vec`.
    fn tree(text: &[u8]) -> Option<Vec<u8>> {
        Json::parse(text).ok().map(|v| crate::jcs::to_vec(&v))
    }

    /// `text` with every non-ASCII character and every `/` inside strings written as `\u`
    /// escapes (astral characters as surrogate pairs), as some JSON writers do.
    fn escape_all(text: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in text.chars() {
            if in_string && !escaped && (!c.is_ascii() || c == '/') {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
                continue;
            }
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' && in_string {
                escaped = true;
            } else if c == '"' {
                in_string = !in_string;
            }
        }
        out
    }

    /// 20,000 random values (StdRng seed 8785, the generator of `jcs`'s tests), each written
    /// compactly, pretty-printed and with everything escaped: the same bytes as `serde_jcs`
    /// and as the tree path.
    #[test]
    fn matches_serde_jcs_and_the_tree_path_on_random_values() {
        let mut rng = StdRng::seed_from_u64(8785);
        for i in 0..20_000 {
            let v = random_value(&mut rng, 4);
            let want = oracle(&v);
            let compact = serde_json::to_string(&v).unwrap();
            for text in [
                compact.clone(),
                serde_json::to_string_pretty(&v).unwrap(),
                escape_all(&compact),
            ] {
                let got = jcs(text.as_bytes()).unwrap_or_else(|e| panic!("value {i}: {e}: {text}"));
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "value {i}: {text}"
                );
                assert_eq!(Some(got), tree(text.as_bytes()), "value {i}: {text}");
            }
        }
    }

    /// Random damage to random texts (StdRng seed 3161: ASCII bytes inserted, deleted or
    /// replaced, one to three times): a text is refused exactly when `Json::parse` refuses it,
    /// and otherwise canonicalizes to the same bytes.
    #[test]
    fn refuses_exactly_what_the_tree_path_refuses() {
        const NOISE: &[u8] = b"{}[]\":,\\ \t\n-+.0123456789eEtrufalsn/u\x01x";
        let mut rng = StdRng::seed_from_u64(3161);
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..30_000 {
            let v = random_value(&mut rng, 3);
            let mut text = if rng.random_bool(0.5) {
                serde_json::to_vec(&v).unwrap()
            } else {
                serde_json::to_vec_pretty(&v).unwrap()
            };
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..=text.len());
                let b = NOISE[rng.random_range(0..NOISE.len())];
                match rng.random_range(0..3) {
                    0 => text.insert(at, b),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ if at < text.len() => text[at] = b,
                    _ => text.push(b),
                }
            }
            let ours = jcs(&text);
            assert_eq!(
                ours.as_ref().ok(),
                tree(&text).as_ref(),
                "text {i}: {} ({ours:?})",
                String::from_utf8_lossy(&text)
            );
            if ours.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes are exercised.
        assert!(accepted > 1_000 && refused > 1_000, "{accepted} {refused}");
    }

    #[test]
    fn texts_json_refuses_are_refused_with_their_place() {
        for (text, offset) in [
            (&b""[..], 0),
            (b"  ", 2),
            (b"{", 1),
            (b"[1,]", 3),
            (b"{\"a\" 1}", 5),
            (b"{\"a\":1,}", 7),
            (b"{1:2}", 1),
            (b"01", 1),
            (b"-", 0),
            (b"1.", 0),
            (b"1e+", 0),
            (b"\"\\x\"", 1),
            (b"\"\\u12\"", 3),
            (b"\"\\ud800\"", 1),
            (b"\"\\udc00\"", 1),
            (b"\"\\ud800\\u0041\"", 1),
            (b"\"tab\there\"", 4),
            (b"\"open", 0),
            (b"[1] 2", 4),
            (b"nul", 0),
            (b"[true false]", 6),
            (b"1e400", 0),
            (b"{\"a\":1,\"b\":2,\"a\":3}", 0),
            (b"[\"\xC0\xAF\"]", 2),
        ] {
            let err = jcs(text).expect_err(&String::from_utf8_lossy(text));
            assert_eq!(
                err.offset,
                offset,
                "{}: {err}",
                String::from_utf8_lossy(text)
            );
            assert!(tree(text).is_none(), "{}", String::from_utf8_lossy(text));
        }
        let dup = jcs(br#"{"x":[{"b":1,"\u0062":2}]}"#).unwrap_err();
        assert!(dup.what.contains("duplicate member name \"b\""), "{dup}");
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            for t in [text, objects] {
                assert_eq!(
                    jcs(t.as_bytes()).is_ok(),
                    tree(t.as_bytes()).is_some(),
                    "{depth}"
                );
                assert_eq!(jcs(t.as_bytes()).is_ok(), depth < MAX_DEPTH, "{depth}");
            }
        }
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_doubles() {
        for (input, want) in [
            ("-0", "0"),
            ("-0.0", "0"),
            ("1.0", "1"),
            ("100", "100"),
            ("123456789012345", "123456789012345"),
            ("1234567890123456789", "1234567890123456800"),
            ("-9007199254740993", "-9007199254740992"),
            ("1E2", "100"),
            ("0.1", "0.1"),
            ("1e-400", "0"),
            ("2.5e-5", "0.000025"),
        ] {
            let text = format!("[{input}]");
            assert_eq!(
                String::from_utf8(jcs(text.as_bytes()).unwrap()).unwrap(),
                format!("[{want}]"),
                "{input}"
            );
            assert_eq!(
                tree(text.as_bytes()).unwrap(),
                format!("[{want}]").into_bytes()
            );
        }
    }

    #[test]
    fn skip_leaves_out_only_the_root_member() {
        let text = br#" {"signature":{"x":1},"b":{"signature":2},"a":[{"signature":3}]} "#;
        assert_eq!(
            canonicalize(text, Some("signature"), &mut ()).unwrap(),
            br#"{"a":[{"signature":3}],"b":{"signature":2}}"#
        );
        // Already in order, the member in the middle: the commas still come out right.
        let text = br#"{"a":1,"signature":[2],"z":3}"#;
        assert_eq!(
            canonicalize(text, Some("signature"), &mut ()).unwrap(),
            br#"{"a":1,"z":3}"#
        );
        assert_eq!(
            canonicalize(br#"{"signature":1}"#, Some("signature"), &mut ()).unwrap(),
            b"{}"
        );
        assert_eq!(
            canonicalize(b"[1]", Some("signature"), &mut ()).unwrap(),
            b"[1]"
        );
    }

    /// A watch that records every value under the root's member "want", with its path.
    #[derive(Default)]
    struct Recorder {
        names: Vec<String>,
        seen: Vec<(String, String)>,
    }

    impl<'a> Watch<'a> for Recorder {
        fn root(&mut self) -> u32 {
            1
        }
        fn member(&mut self, parent: u32, name: &str) -> u32 {
            if parent == 1 && name != "want" {
                return 0;
            }
            self.names.push(format!("{parent}.{name}"));
            self.names.len() as u32 + 1
        }
        fn element(&mut self, parent: u32, index: usize) -> u32 {
            self.names.push(format!("{parent}[{index}]"));
            self.names.len() as u32 + 1
        }
        fn value(&mut self, state: u32, text: &'a str) {
            let name = match state {
                1 => "root".to_owned(),
                s => self.names[s as usize - 2].clone(),
            };
            self.seen.push((name, text.to_owned()));
        }
    }

    #[test]
    fn a_watch_sees_the_text_of_what_it_asks_for_and_nothing_else() {
        let text = br#"{"skip":{"want":1},"want":[ {"k\u0031" : "v\n"}, [] , 2.50 ],"z":0}"#;
        let mut w = Recorder::default();
        canonicalize(text, None, &mut w).unwrap();
        let seen: Vec<(&str, &str)> = w
            .seen
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("3.k1", r#""v\n""#),
                ("2[0]", r#"{"k\u0031" : "v\n"}"#),
                ("2[1]", "[]"),
                ("2[2]", "2.50"),
                ("1.want", r#"[ {"k\u0031" : "v\n"}, [] , 2.50 ]"#),
                ("root", std::str::from_utf8(text).unwrap()),
            ]
        );
        // The names asked about: the root's members, then inside "want" only.
        assert_eq!(
            w.names,
            ["1.want", "2[0]", "3.k1", "2[1]", "2[2]"].map(String::from)
        );
    }

    /// The strings and escapes that take the slow path, written back as JCS writes them.
    #[test]
    fn escaped_strings_are_decoded_and_written_back() {
        let v: Value = serde_json::from_str(
            r#"["a\"b", "\\", "\u00e9\/\ud83d\ude00\u0007", "x\u0000y\u001fz"]"#,
        )
        .unwrap();
        let text = br#"["a\"b", "\\", "\u00e9\/\ud83d\ude00\u0007", "x\u0000y\u001fz"]"#;
        assert_eq!(jcs(text).unwrap(), oracle(&v));
        assert_eq!(
            String::from_utf8(jcs(text).unwrap()).unwrap(),
            "[\"a\\\"b\",\"\\\\\",\"é/😀\\u0007\",\"x\\u0000y\\u001fz\"]"
        );
    }
}
