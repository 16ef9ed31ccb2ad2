//! Writing one new item in the document's own style.
//!
//! The style is read from the existing items: dash and key indentation, key spelling and order, quoting of each
//! value, block or flow `groups`, JSON compact or pretty. Anything not seen falls back to the AWS documentation's
//! layout (`- rolearn: ...` / `  username: ...` / `  groups:` / `    - ...`).

use super::analyze::{field_kind, ListKind};
use super::layout::{line_of, Item, Shape, ValueTok};
use super::node::Node;
use super::problems::Field;
use super::scalar::{double, render, Ctx, Quote};

const FIELDS: [Field; 3] = [Field::Arn, Field::Username, Field::Group];

fn slot(f: Field) -> usize {
    match f {
        Field::Arn => 0,
        Field::Username => 1,
        Field::Group => 2,
    }
}

/// How `groups` is written in a block item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupsStyle {
    /// `groups:` then `<indent>-<gap>value` lines.
    Block { indent: usize, gap: usize },
    /// `groups: [a, b]`
    Flow { pad: bool, comma_space: bool },
}

/// How a `{...}` item is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowStyle {
    pub colon_space: bool,
    pub comma_space: bool,
    pub brace_pad: bool,
    /// One field per line: (column of `{`, column of keys, column of group elements when one per line).
    pub pretty: Option<(usize, usize, Option<usize>)>,
}

/// How a whole item is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemStyle {
    Block {
        dash_indent: usize,
        key_indent: usize,
        dash_alone: bool,
        groups: GroupsStyle,
    },
    /// `- {rolearn: ..., ...}`
    BlockFlowItem {
        dash_indent: usize,
        dash_gap: usize,
        flow: FlowStyle,
    },
    /// An element of a JSON/flow array.
    Flow(FlowStyle),
}

/// Everything needed to write one item like its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Style {
    pub nl: &'static str,
    /// Key as written (quotes included) and as read, per field.
    pub keys: [(String, String); 3],
    pub order: Vec<Field>,
    pub quotes: [Quote; 3],
    pub item: ItemStyle,
}

/// The values of the item to write.
pub(crate) struct Values<'a> {
    pub arn: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
}

/// Reads the style of `text` (already scanned into `shape`).
pub(crate) fn detect(kind: ListKind, text: &str, shape: &Shape, nl: &'static str) -> Style {
    let items: &[Item] = match shape {
        Shape::Block(b) => &b.items,
        Shape::Flow(f) => &f.items,
        Shape::Empty | Shape::Unknown => &[],
    };
    let json = matches!(shape, Shape::Flow(_));
    let mut keys = FIELDS.map(|f| {
        let name = match f {
            Field::Arn => kind.arn_key(),
            Field::Username => "username",
            Field::Group => "groups",
        };
        let raw = if json { double(name) } else { name.to_string() };
        (raw, name.to_string())
    });
    let mut quotes = [if json { Quote::Double } else { Quote::Plain }; 3];
    let fields_of = |item: &Item| -> Vec<(Field, usize)> {
        item.pairs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((field_kind(kind, p.key.as_deref()?)?, i)))
            .collect()
    };
    let template = items
        .iter()
        .find(|i| fields_of(i).iter().any(|(f, _)| *f == Field::Arn))
        .or_else(|| items.first());
    let mut order: Vec<Field> = Vec::new();
    if let Some(t) = template {
        for (f, _) in fields_of(t) {
            if !order.contains(&f) {
                order.push(f);
            }
        }
    }
    for f in FIELDS {
        if !order.contains(&f) {
            order.push(f);
        }
    }
    // Spelling and quoting per field: from the template, else the first item that has the field.
    let ordered: Vec<&Item> = template.into_iter().chain(items.iter()).collect();
    let mut seen = [false; 3];
    for f in FIELDS {
        let found = ordered.iter().find_map(|item| {
            let (_, i) = fields_of(item).into_iter().find(|(g, _)| *g == f)?;
            Some(&item.pairs[i])
        });
        let Some(p) = found else { continue };
        if let Some(name) = &p.key {
            keys[slot(f)] = (text[p.key_raw.clone()].to_string(), name.clone());
        }
        let tok = match (&p.value, &p.first_elem) {
            (ValueTok::Scalar(r), _) if f != Field::Group => Some(&text[r.clone()]),
            (ValueTok::FlowSeq(r), _) if f == Field::Group => {
                Some(text[r.start + 1..r.end].trim_start())
            }
            (ValueTok::Nested, Some((_, _, r))) if f == Field::Group => Some(&text[r.clone()]),
            _ => None,
        };
        if let Some(tok) = tok.filter(|t| !t.starts_with(']')) {
            quotes[slot(f)] = Quote::of_token(tok);
            seen[slot(f)] = true;
        }
    }
    // A field never seen with a value (say only `groups: []`) is quoted like the fields that were.
    if let Some(q) = FIELDS
        .iter()
        .find(|f| seen[slot(**f)])
        .map(|f| quotes[slot(*f)])
    {
        for f in FIELDS {
            if !seen[slot(f)] {
                quotes[slot(f)] = q;
            }
        }
    }
    let item = match (shape, template) {
        (Shape::Flow(_), Some(t)) => ItemStyle::Flow(flow_style(text, t)),
        (Shape::Flow(_), None) => ItemStyle::Flow(FlowStyle {
            colon_space: true,
            comma_space: true,
            brace_pad: false,
            pretty: None,
        }),
        (Shape::Block(b), Some(t)) if t.flow => ItemStyle::BlockFlowItem {
            dash_indent: b.dash_indent,
            dash_gap: t.dash_gap.max(1),
            flow: flow_style(text, t),
        },
        (Shape::Block(b), Some(t)) => {
            let d = b.dash_indent;
            let dash_alone = t
                .pairs
                .first()
                .is_none_or(|p| line_of(text, p.key_raw.start) != t.line);
            let key_indent = t
                .key_indent
                .unwrap_or(d + 2)
                .max(d + 2 - usize::from(dash_alone));
            ItemStyle::Block {
                dash_indent: d,
                key_indent,
                dash_alone,
                groups: groups_style(kind, text, &ordered, key_indent),
            }
        }
        _ => ItemStyle::Block {
            dash_indent: 0,
            key_indent: 2,
            dash_alone: false,
            groups: GroupsStyle::Block { indent: 4, gap: 1 },
        },
    };
    Style {
        nl,
        keys,
        order,
        quotes,
        item,
    }
}

fn groups_style(kind: ListKind, text: &str, items: &[&Item], key_indent: usize) -> GroupsStyle {
    for item in items.iter().filter(|i| !i.flow) {
        for p in &item.pairs {
            if p.key.as_deref().and_then(|k| field_kind(kind, k)) != Some(Field::Group) {
                continue;
            }
            match (&p.value, &p.first_elem) {
                (ValueTok::FlowSeq(r), _) => {
                    let s = &text[r.clone()];
                    // `[]` says nothing about how a non-empty list is written.
                    if s.contains('\n') || s[1..].trim_start().starts_with(']') {
                        continue;
                    }
                    return GroupsStyle::Flow {
                        pad: s.starts_with("[ ") && s.len() > 3,
                        comma_space: !s.contains(',') || s.contains(", "),
                    };
                }
                (ValueTok::Nested, Some((indent, gap, _))) => {
                    return GroupsStyle::Block {
                        indent: *indent,
                        gap: (*gap).max(1),
                    }
                }
                _ => {}
            }
        }
    }
    GroupsStyle::Block {
        indent: key_indent + 2,
        gap: 1,
    }
}

fn column(text: &str, offset: usize) -> usize {
    offset - text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn flow_style(text: &str, item: &Item) -> FlowStyle {
    let body = &text[item.start..item.end];
    let first_key_end = item.pairs.first().map_or(item.start, |p| p.key_raw.end);
    let after_colon = text[first_key_end..item.end]
        .find(':')
        .map(|i| first_key_end + i + 1);
    let colon_space = after_colon.is_some_and(|i| text.as_bytes().get(i) == Some(&b' '));
    let sep = match item.pairs.as_slice() {
        [a, b, ..] => {
            let end = match &a.value {
                ValueTok::Scalar(r) | ValueTok::FlowSeq(r) | ValueTok::FlowMap(r) => r.end,
                _ => a.key_raw.end,
            };
            text.get(end..b.key_raw.start).unwrap_or(", ")
        }
        _ => ", ",
    };
    let pretty = body.contains('\n') && sep.contains('\n');
    let pretty = pretty.then(|| {
        let keys = item
            .pairs
            .first()
            .map_or(column(text, item.start) + 2, |p| {
                column(text, p.key_raw.start)
            });
        let groups = item.pairs.iter().find_map(|p| match &p.value {
            ValueTok::FlowSeq(r) if text[r.clone()].contains('\n') => {
                let inner = &text[r.start + 1..r.end];
                let first = inner.find(|c: char| !c.is_whitespace())?;
                Some(column(text, r.start + 1 + first))
            }
            _ => None,
        });
        (column(text, item.start), keys, groups)
    });
    FlowStyle {
        colon_space,
        comma_space: sep.starts_with(", ") || sep.contains('\n'),
        brace_pad: body.starts_with("{ "),
        pretty,
    }
}

/// The lines of the new item (without terminators), for block lists.
pub(crate) fn block_lines(style: &Style, v: &Values) -> Vec<String> {
    match &style.item {
        ItemStyle::Block {
            dash_indent,
            key_indent,
            dash_alone,
            groups,
        } => {
            let pad = |n: usize| " ".repeat(n);
            let mut lines = Vec::new();
            if *dash_alone {
                lines.push(format!("{}-", pad(*dash_indent)));
            }
            for (i, f) in style.order.iter().enumerate() {
                let prefix = if i == 0 && !*dash_alone {
                    format!(
                        "{}-{}",
                        pad(*dash_indent),
                        pad(key_indent - dash_indent - 1)
                    )
                } else {
                    pad(*key_indent)
                };
                let key = &style.keys[slot(*f)].0;
                let q = style.quotes[slot(*f)];
                match f {
                    Field::Arn => {
                        lines.push(format!("{prefix}{key}: {}", render(v.arn, q, Ctx::Block)))
                    }
                    Field::Username => lines.push(format!(
                        "{prefix}{key}: {}",
                        render(v.username, q, Ctx::Block)
                    )),
                    Field::Group if v.groups.is_empty() => lines.push(format!("{prefix}{key}: []")),
                    Field::Group => match groups {
                        GroupsStyle::Block { indent, gap } => {
                            lines.push(format!("{prefix}{key}:"));
                            for g in v.groups {
                                lines.push(format!(
                                    "{}-{}{}",
                                    pad(*indent),
                                    pad(*gap),
                                    render(g, q, Ctx::Block)
                                ));
                            }
                        }
                        GroupsStyle::Flow {
                            pad: p,
                            comma_space,
                        } => {
                            let sep = if *comma_space { ", " } else { "," };
                            let inner: Vec<String> =
                                v.groups.iter().map(|g| render(g, q, Ctx::Flow)).collect();
                            let sp = if *p { " " } else { "" };
                            lines.push(format!("{prefix}{key}: [{sp}{}{sp}]", inner.join(sep)));
                        }
                    },
                }
            }
            lines
        }
        ItemStyle::BlockFlowItem {
            dash_indent,
            dash_gap,
            flow,
        } => vec![format!(
            "{}-{}{}",
            " ".repeat(*dash_indent),
            " ".repeat(*dash_gap),
            flow_item(style, flow, v)
        )],
        ItemStyle::Flow(flow) => vec![flow_item(style, flow, v)],
    }
}

/// The new item as one `{...}` (possibly multi-line for pretty JSON).
pub(crate) fn flow_item(style: &Style, flow: &FlowStyle, v: &Values) -> String {
    let colon = if flow.colon_space { ": " } else { ":" };
    let comma = if flow.comma_space { ", " } else { "," };
    let value = |f: Field, group_indent: Option<usize>| -> String {
        let q = style.quotes[slot(f)];
        match f {
            Field::Arn => render(v.arn, q, Ctx::Flow),
            Field::Username => render(v.username, q, Ctx::Flow),
            Field::Group => {
                let gs: Vec<String> = v.groups.iter().map(|g| render(g, q, Ctx::Flow)).collect();
                match (group_indent, flow.pretty) {
                    (Some(gi), Some((_, ki, _))) if !gs.is_empty() => {
                        let nl = style.nl;
                        let body: Vec<String> = gs
                            .iter()
                            .map(|g| format!("{}{g}", " ".repeat(gi)))
                            .collect();
                        format!(
                            "[{nl}{}{nl}{}]",
                            body.join(&format!(",{nl}")),
                            " ".repeat(ki)
                        )
                    }
                    _ => format!("[{}]", gs.join(comma)),
                }
            }
        }
    };
    match flow.pretty {
        Some((item_col, key_col, group_col)) => {
            let nl = style.nl;
            let fields: Vec<String> = style
                .order
                .iter()
                .map(|f| {
                    format!(
                        "{}{}{colon}{}",
                        " ".repeat(key_col),
                        style.keys[slot(*f)].0,
                        value(*f, group_col)
                    )
                })
                .collect();
            format!(
                "{{{nl}{}{nl}{}}}",
                fields.join(&format!(",{nl}")),
                " ".repeat(item_col)
            )
        }
        None => {
            let fields: Vec<String> = style
                .order
                .iter()
                .map(|f| format!("{}{colon}{}", style.keys[slot(*f)].0, value(*f, None)))
                .collect();
            let pad = if flow.brace_pad { " " } else { "" };
            format!("{{{pad}{}{pad}}}", fields.join(comma))
        }
    }
}

/// The node the new item must parse to.
pub(crate) fn expected_node(style: &Style, v: &Values) -> Node {
    Node::Map(
        style
            .order
            .iter()
            .map(|f| {
                let key = Node::Str(style.keys[slot(*f)].1.clone());
                let value = match f {
                    Field::Arn => Node::Str(v.arn.to_string()),
                    Field::Username => Node::Str(v.username.to_string()),
                    Field::Group => {
                        Node::Seq(v.groups.iter().map(|g| Node::Str(g.clone())).collect())
                    }
                };
                (key, value)
            })
            .collect(),
    )
}
