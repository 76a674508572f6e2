//! Just enough JSON output for one-object-per-line command output: flat objects of
//! strings, integers, booleans and nulls, with strings escaped per RFC 8259.

use std::fmt::Write;

/// A flat JSON object built field by field, rendered on one line.
pub struct JsonObject {
    text: String,
}

impl JsonObject {
    pub fn new() -> Self {
        JsonObject {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        push_string(&mut self.text, key);
        self.text.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(&mut self.text, value);
        self
    }

    /// Any integer type up to 64 bits, exactly (no float rounding).
    pub fn int(mut self, key: &str, value: impl Into<i128>) -> Self {
        self.key(key);
        // Writing to a String cannot fail.
        let _ = write!(self.text, "{}", value.into());
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    pub fn opt_int(self, key: &str, value: Option<impl Into<i128>>) -> Self {
        match value {
            Some(v) => self.int(key, v),
            None => self.null(key),
        }
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// A finite number in Rust's shortest round-trip form (`2000`, `0.2`); NaN and
    /// infinities, which JSON cannot hold, as null.
    pub fn float(mut self, key: &str, value: f64) -> Self {
        if !value.is_finite() {
            return self.null(key);
        }
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    pub fn opt_float(self, key: &str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.float(key, v),
            None => self.null(key),
        }
    }

    /// A value that is already JSON (a nested object from another `JsonObject`).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.text.push_str(json);
        self
    }

    pub fn null(mut self, key: &str) -> Self {
        self.key(key);
        self.text.push_str("null");
        self
    }

    /// The object as one line of text, without a trailing newline.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Appends `s` as a quoted JSON string: `"` and `\` escaped, control characters as
/// `\n`-style or `\u00XX` escapes, everything else (all of Unicode) as is.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_render_every_kind_of_field() {
        let line = JsonObject::new()
            .str("s", "x")
            .int("neg", -1i64)
            .int("big", u64::MAX)
            .bool("b", true)
            .opt_int("none", None::<u64>)
            .opt_str("some", Some("y"))
            .float("f", 0.25)
            .float("nan", f64::NAN)
            .raw("o", "{}")
            .finish();
        assert_eq!(
            line,
            r#"{"s":"x","neg":-1,"big":18446744073709551615,"b":true,"none":null,"some":"y","f":0.25,"nan":null,"o":{}}"#
        );
        assert_eq!(JsonObject::new().finish(), "{}");
    }

    #[test]
    fn strings_are_escaped() {
        let line = JsonObject::new()
            .str("k\"", "a\"b\\c\nd\re\tf\u{08}\u{0c}\u{01}\u{1f}\u{7f}é€😀")
            .finish();
        assert_eq!(
            line,
            "{\"k\\\"\":\"a\\\"b\\\\c\\nd\\re\\tf\\b\\f\\u0001\\u001f\u{7f}é€😀\"}"
        );
    }
}
