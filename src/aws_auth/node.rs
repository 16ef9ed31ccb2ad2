//! A YAML value tree that keeps every key in order, duplicates included.
//!
//! `serde_norway::Value` refuses a mapping with a repeated key, while the authenticator (yaml.v2, not strict) keeps
//! the last one. This tree lets the analysis see what the authenticator sees, and gives the edit verification an
//! order-sensitive equality.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One parsed YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Pairs in document order; a repeated key appears twice.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// How the authenticator's JSON decoder would name this value's type in an error.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The key as the authenticator's YAML-to-JSON step spells it (scalars become strings).
    pub(crate) fn key_string(&self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => f.to_string(),
            Node::Str(s) => s.clone(),
            Node::Seq(_) | Node::Map(_) => String::new(),
        }
    }
}

/// Where a whole list failed to parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseFailure {
    /// Valid YAML whose top level is not a list (a type error for the authenticator), not a syntax error.
    pub not_a_list: bool,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Parses one list text (`mapRoles`, `mapUsers`, `mapAccounts`) into its items.
///
/// Empty, whitespace-only and comment-only texts are an empty list, as for the authenticator (`null`).
pub(crate) fn parse_items(text: &str) -> Result<Vec<Node>, ParseFailure> {
    match serde_norway::from_str::<Node>(text) {
        Ok(Node::Null) => Ok(Vec::new()),
        Ok(Node::Seq(items)) => Ok(items),
        Ok(other) => Err(ParseFailure {
            not_a_list: true,
            line: first_content_line(text),
            column: None,
            message: format!("expected a list of items, found {}", other.kind_name()),
        }),
        Err(e) => {
            let loc = e.location();
            let line = loc.as_ref().map(|l| l.line());
            let mut message = e.to_string();
            if line.is_some_and(|n| tab_indented(text, n) || tab_indented(text, n + 1)) {
                message.push_str(" (a tab in the indentation: YAML indents with spaces only)");
            }
            Err(ParseFailure {
                not_a_list: false,
                line,
                column: loc.as_ref().map(|l| l.column()),
                message,
            })
        }
    }
}

/// True when 1-based line `n` starts its indentation with a tab.
fn tab_indented(text: &str, n: usize) -> bool {
    text.lines()
        .nth(n.wrapping_sub(1))
        .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'))
}

fn first_content_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "---"
        })
        .map(|i| i + 1)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i128::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Node::Map(pairs))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Node, A::Error> {
        Err(de::Error::custom(
            "tagged values (`!tag`) are not supported in aws-auth",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_and_order() {
        let items = parse_items("- b: 1\n  a: x\n  b: 2\n").unwrap();
        assert_eq!(
            items,
            vec![Node::Map(vec![
                (Node::Str("b".into()), Node::Int(1)),
                (Node::Str("a".into()), Node::Str("x".into())),
                (Node::Str("b".into()), Node::Int(2)),
            ])]
        );
    }

    #[test]
    fn empty_forms_are_empty_lists() {
        for t in ["", "  \n", "# nothing\n", "[]", "[ ]", "---\n"] {
            assert_eq!(parse_items(t), Ok(vec![]), "{t:?}");
        }
    }

    #[test]
    fn reports_syntax_error_line() {
        let e = parse_items("- rolearn: a\n\tusername: b\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("tab"), "{}", e.message);
        let e = parse_items("rolearn: a\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("a mapping"));
    }
}
