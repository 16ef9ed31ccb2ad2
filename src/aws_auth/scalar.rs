//! Writing and reading single YAML scalars, conservatively.
//!
//! The authenticator parses with yaml.v2 (YAML 1.1) while we verify with serde_norway (YAML 1.2), so a value is
//! written plain only when both read it as the same string: it starts with a letter, holds no blank, quote, comment
//! or (in flow context) flow indicator, and is none of the 1.1 booleans or nulls (`yes`, `on`, `n`, `~`...).

/// How a scalar is quoted in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Quote {
    #[default]
    Plain,
    Double,
    Single,
}

impl Quote {
    /// The quoting of a raw scalar token as written in the source.
    pub(crate) fn of_token(raw: &str) -> Quote {
        match raw.as_bytes().first() {
            Some(b'"') => Quote::Double,
            Some(b'\'') => Quote::Single,
            _ => Quote::Plain,
        }
    }
}

/// Whether a scalar sits in block context or inside `[...]`/`{...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    Block,
    Flow,
}

/// Words YAML 1.1 (yaml.v2) resolves to something other than a string.
const YAML11_WORDS: &[&str] = &["y", "yes", "n", "no", "true", "false", "on", "off", "null"];

/// True when `s` can be written without quotes and reads back as the same string in YAML 1.1 and 1.2.
pub(crate) fn plain_safe(s: &str, ctx: Ctx) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !first.is_ascii_alphabetic() || s.ends_with(':') {
        return false;
    }
    if YAML11_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return false;
    }
    s.chars().all(|c| match c {
        'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '/' | '@' | '+' | '=' | '-' => true,
        // `:` inside a flow plain scalar trips old libyaml ports: quote it there.
        ':' => ctx == Ctx::Block,
        '{' | '}' | '[' | ']' | ',' => ctx == Ctx::Block,
        _ => false,
    })
}

/// Renders `s` with the wanted quoting; a plain request falls back to double quotes when plain is not safe.
pub(crate) fn render(s: &str, quote: Quote, ctx: Ctx) -> String {
    match quote {
        Quote::Plain if plain_safe(s, ctx) => s.to_string(),
        Quote::Single if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', "''")),
        _ => double(s),
    }
}

/// A double-quoted scalar; JSON string syntax is valid YAML double-quoted syntax.
pub(crate) fn double(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// Decodes a key token as written (`rolearn`, `"rolearn"`, `'rolearn'`); `None` for escapes we don't model.
pub(crate) fn unquote(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return (!inner.contains(['\\', '"'])).then(|| inner.to_string());
    }
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(inner.replace("''", "'"));
    }
    (!raw.is_empty()).then(|| raw.to_string())
}

/// Length in bytes of the quoted token starting at `s[0]` (`"` or `'`), closing quote included.
pub(crate) fn quoted_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let q = *bytes.first()?;
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if q == b'"' => i += 2,
            b'\'' if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == q => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_when_unambiguous() {
        assert!(plain_safe(
            "arn:aws:iam::111122223333:role/Admin",
            Ctx::Block
        ));
        assert!(plain_safe("system:node:{{EC2PrivateDNSName}}", Ctx::Block));
        assert!(!plain_safe("system:node:{{EC2PrivateDNSName}}", Ctx::Flow));
        assert!(!plain_safe("{{SessionName}}", Ctx::Block));
        assert!(!plain_safe("system:masters", Ctx::Flow));
        assert!(plain_safe("admins", Ctx::Flow));
        for s in [
            "yes", "No", "ON", "y", "null", "True", "", "1234", "a b", "a#b", "x:", "*x", "-x",
        ] {
            assert!(!plain_safe(s, Ctx::Block), "{s}");
        }
    }

    #[test]
    fn render_round_trips_through_serde_norway() {
        for s in [
            "yes",
            "it's",
            "say \"hi\"",
            "{{SessionName}}",
            "system:node:{{EC2PrivateDNSName}}",
            "back\\slash",
            "émoji ✓",
        ] {
            for q in [Quote::Plain, Quote::Double, Quote::Single] {
                for ctx in [Ctx::Block, Ctx::Flow] {
                    let doc = match ctx {
                        Ctx::Block => format!("k: {}\n", render(s, q, ctx)),
                        Ctx::Flow => format!("[{}]", render(s, q, ctx)),
                    };
                    let v: serde_norway::Value = serde_norway::from_str(&doc).unwrap();
                    let got = match ctx {
                        Ctx::Block => v["k"].as_str().map(str::to_string),
                        Ctx::Flow => v[0].as_str().map(str::to_string),
                    };
                    assert_eq!(got.as_deref(), Some(s), "{doc}");
                }
            }
        }
    }

    #[test]
    fn unquote_and_quoted_len() {
        assert_eq!(unquote("\"roleARN\"").as_deref(), Some("roleARN"));
        assert_eq!(unquote("'it''s'").as_deref(), Some("it's"));
        assert_eq!(unquote("\"a\\nb\""), None);
        assert_eq!(quoted_len("\"a\\\"b\" rest"), Some(6));
        assert_eq!(quoted_len("'it''s' x"), Some(7));
        assert_eq!(quoted_len("\"open"), None);
    }
}
