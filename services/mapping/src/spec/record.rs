//! A partner record parsed once into a borrowed index of the values the spec's paths read.
//!
//! Most spec fields read a few plain paths (`.email`, `.address.city`). Building jaq values for
//! the whole record costs more than mapping it, so the record is parsed by serde_json into an
//! index instead: the spec's paths form a tree ([`PathTable`], built when the spec compiles),
//! and one pass over the payload keeps each path's value as a slice of the payload
//! (`&RawValue`), descending into nested objects only where a path goes. That pass is also the
//! check that the payload is strict JSON. jaq's value of the whole record is built only when an
//! expression needs the interpreter ([`Record::jaq_value`]).

use std::cell::OnceCell;

use jaq_json::Val;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::expr::parse_payload;

/// The node of the record as a whole.
const ROOT: usize = 0;

/// The plain paths a spec reads, as a tree of object keys; node numbers are slots of a
/// [`Record`].
#[derive(Debug)]
pub(crate) struct PathTable {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    key: Box<str>,
    parent: usize,
    children: Vec<usize>,
    /// The children by the length of their key: a member's key is compared with the one or
    /// two of the same length, not with every key the spec reads (this runs per member).
    children_by_key_length: Vec<Vec<usize>>,
    /// Whether an expression reads the value here, as opposed to only paths below it.
    read: bool,
}

impl Node {
    fn new(key: &str, parent: usize) -> Node {
        Node {
            key: key.into(),
            parent,
            children: Vec::new(),
            children_by_key_length: Vec::new(),
            read: false,
        }
    }

    /// An object member whose value only matters for the paths below it: it is read in the
    /// same pass as its parent, without its text.
    fn is_passed_through(&self) -> bool {
        !self.read && !self.children.is_empty()
    }

    fn child(&self, nodes: &[Node], key: &str) -> Option<usize> {
        self.children_by_key_length
            .get(key.len())?
            .iter()
            .copied()
            .find(|&child| *nodes[child].key == *key)
    }
}

impl Default for PathTable {
    fn default() -> PathTable {
        PathTable {
            nodes: vec![Node::new("", ROOT)],
        }
    }
}

impl PathTable {
    /// The node of `keys` (`["address", "city"]` for `.address.city`), added when new; an
    /// expression reads it.
    pub(crate) fn node(&mut self, keys: &[String]) -> usize {
        let mut current = ROOT;
        for key in keys {
            current = match self.nodes[current].child(&self.nodes, key) {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::new(key, current));
                    let parent = &mut self.nodes[current];
                    parent.children.push(child);
                    if parent.children_by_key_length.len() <= key.len() {
                        parent
                            .children_by_key_length
                            .resize_with(key.len() + 1, Vec::new);
                    }
                    parent.children_by_key_length[key.len()].push(child);
                    child
                }
            };
        }
        self.nodes[current].read = true;
        current
    }

    fn clear_below(&self, node: usize, values: &mut [Option<&RawValue>]) {
        for &child in &self.nodes[node].children {
            values[child] = None;
            self.clear_below(child, values);
        }
    }
}

/// What a path finds in a record, as jq sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    /// The JSON text of the value there.
    Value(&'a RawValue),
    /// Null: a key is missing below an object, or the path goes through a null.
    Null,
    /// jq fails: the path indexes a string, number, array or boolean.
    Fails,
}

/// Equal when both find the same JSON text, or both nothing.
impl PartialEq for At<'_> {
    fn eq(&self, other: &At<'_>) -> bool {
        match (self, other) {
            (At::Value(left), At::Value(right)) => left.get() == right.get(),
            (At::Null, At::Null) | (At::Fails, At::Fails) => true,
            _ => false,
        }
    }
}

/// One partner record: the payload, checked to be JSON, and the values at the table's paths.
pub(crate) struct Record<'a> {
    payload: &'a str,
    table: &'a PathTable,
    /// The value at each node, where the record has one. The root's slot is empty when the
    /// record is an object (its members fill the slots below it) and holds the record
    /// otherwise.
    values: Vec<Option<&'a RawValue>>,
    /// jaq's value of the whole record, built on first use.
    jaq: OnceCell<Result<Val, String>>,
}

impl<'a> Record<'a> {
    /// Parses `payload`; the error describes why it is not JSON.
    pub(crate) fn parse(payload: &'a str, table: &'a PathTable) -> Result<Record<'a>, String> {
        let mut values = vec![None; table.nodes.len()];
        if payload.trim_start().starts_with('{') {
            let mut deserializer = serde_json::Deserializer::from_str(payload);
            ObjectSeed {
                table,
                node: ROOT,
                values: &mut values,
            }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end())
            .map_err(|error| error.to_string())?;
        } else {
            let record: &RawValue =
                serde_json::from_str(payload).map_err(|error| error.to_string())?;
            values[ROOT] = Some(record);
        }
        let record = Record {
            payload,
            table,
            values,
            jaq: OnceCell::new(),
        };
        // serde_json lets a lone UTF-16 surrogate (`"\ud800"`) through in text it skips, and
        // jaq refuses it: such a record is refused whole, as it was before this index, so the
        // rare payload with `\u` escapes is read by jaq straight away.
        if payload.as_bytes().contains(&b'\\') && payload.contains("\\u") {
            record.jaq_value()?;
        }
        Ok(record)
    }

    /// What jq's `.a.b` finds at `node`.
    pub(crate) fn at(&self, node: usize) -> At<'a> {
        if let Some(found) = self.values[node] {
            return At::Value(found);
        }
        // No value here: null when the nearest value above is an object (the key is missing)
        // or null, a failure when it is anything else.
        let mut current = node;
        loop {
            if current == ROOT {
                // An empty root slot means the record is an object (see `values`).
                return At::Null;
            }
            current = self.table.nodes[current].parent;
            if let Some(found) = self.values[current] {
                return match found.get().as_bytes().first() {
                    Some(b'{' | b'n') => At::Null,
                    _ => At::Fails,
                };
            }
        }
    }

    /// jaq's value of the whole record, for expressions the fast path leaves to the interpreter
    /// and for error messages.
    pub(crate) fn jaq_value(&self) -> Result<&Val, String> {
        self.jaq
            .get_or_init(|| parse_payload(self.payload))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Reads an object's members into the slots of `node`'s children, skipping the others.
struct ObjectSeed<'t, 'v, 'a> {
    table: &'t PathTable,
    node: usize,
    values: &'v mut [Option<&'a RawValue>],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let table = self.table;
        let parent = &table.nodes[self.node];
        while let Some(child) = map.next_key_seed(KeySeed { table, parent })? {
            let Some(child) = child else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            // A repeated key: the last one wins, with all it holds (as in jq).
            if self.values[child].is_some() {
                table.clear_below(child, self.values);
            }
            if table.nodes[child].is_passed_through() {
                let kind = map.next_value_seed(MemberSeed {
                    table,
                    node: child,
                    values: self.values,
                })?;
                self.values[child] = Some(kind.stand_in());
                continue;
            }
            let found: &'de RawValue = map.next_value()?;
            self.values[child] = Some(found);
            if !table.nodes[child].children.is_empty() && found.get().starts_with('{') {
                let mut nested = serde_json::Deserializer::from_str(found.get());
                ObjectSeed {
                    table,
                    node: child,
                    values: self.values,
                }
                .deserialize(&mut nested)
                .map_err(A::Error::custom)?;
            }
        }
        Ok(())
    }
}

/// What a passed-through member held, which is all [`Record::at`] asks of it: an object's
/// members are in the slots below, and below anything else is null or a failure.
#[derive(Clone, Copy)]
enum Kind {
    Object,
    Null,
    Other,
}

impl Kind {
    /// JSON text of the same kind, kept in the member's slot.
    fn stand_in(self) -> &'static RawValue {
        static STAND_INS: std::sync::LazyLock<[&'static RawValue; 3]> =
            std::sync::LazyLock::new(|| {
                ["{}", "null", "0"]
                    .map(|text| serde_json::from_str(text).expect("the stand-ins are JSON values"))
            });
        STAND_INS[self as usize]
    }
}

/// Reads a passed-through member: an object's members into the slots below `node`, in the same
/// pass as its parent (instead of taking its text and parsing that again); anything else is
/// only told apart. A number beyond `f64`'s range there is refused by serde_json; jq could not
/// index it either, so the record failed before too, with another message.
struct MemberSeed<'t, 'v, 'a> {
    table: &'t PathTable,
    node: usize,
    values: &'v mut [Option<&'a RawValue>],
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_, '_, 'de> {
    type Value = Kind;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_, '_, 'de> {
    type Value = Kind;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kind, A::Error> {
        ObjectSeed {
            table: self.table,
            node: self.node,
            values: self.values,
        }
        .visit_map(map)?;
        Ok(Kind::Object)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Kind::Other)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Other)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Other)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Other)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::Other)
    }
}

/// Finds a member's key among the wanted children; `None` for a member no path reads.
struct KeySeed<'t> {
    table: &'t PathTable,
    parent: &'t Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.parent.child(&self.table.nodes, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(paths: &[&str]) -> (PathTable, Vec<usize>) {
        let mut table = PathTable::default();
        let nodes = paths
            .iter()
            .map(|path| {
                let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
                table.node(&keys)
            })
            .collect();
        (table, nodes)
    }

    fn text(record: &Record<'_>, node: usize) -> Option<String> {
        match record.at(node) {
            At::Value(found) => Some(found.get().to_owned()),
            At::Null | At::Fails => None,
        }
    }

    #[test]
    fn finds_the_paths_and_skips_the_rest() {
        let (table, nodes) = table_of(&["a", "o.x", "o.y", "missing", "o.z"]);
        let payload = r#"{"a": "A", "skip": {"o": 1}, "o": {"x": [1, 2], "y": 4.50}}"#;
        let record = Record::parse(payload, &table).unwrap();
        assert_eq!(text(&record, nodes[0]).as_deref(), Some("\"A\""));
        assert_eq!(text(&record, nodes[1]).as_deref(), Some("[1, 2]"));
        assert_eq!(text(&record, nodes[2]).as_deref(), Some("4.50"));
        assert_eq!(record.at(nodes[3]), At::Null);
        assert_eq!(record.at(nodes[4]), At::Null);
    }

    #[test]
    fn the_last_of_repeated_keys_wins_whole() {
        let (table, nodes) = table_of(&["o.x", "o.y"]);
        let record = Record::parse(r#"{"o": {"x": 1, "y": 2}, "o": {"y": 3}}"#, &table).unwrap();
        assert_eq!(record.at(nodes[0]), At::Null);
        assert_eq!(text(&record, nodes[1]).as_deref(), Some("3"));
    }

    #[test]
    fn indexing_a_scalar_is_not_null_but_indexing_null_is() {
        let (table, nodes) = table_of(&["s.x", "n.x", "n.x.y"]);
        let record = Record::parse(r#"{"s": "text", "n": null}"#, &table).unwrap();
        assert_eq!(record.at(nodes[0]), At::Fails);
        assert_eq!(record.at(nodes[1]), At::Null);
        assert_eq!(record.at(nodes[2]), At::Null);

        let (table, nodes) = table_of(&["a"]);
        let record = Record::parse(" [1]", &table).unwrap();
        assert_eq!(record.at(nodes[0]), At::Fails);
        let record = Record::parse("null", &table).unwrap();
        assert_eq!(record.at(nodes[0]), At::Null);
    }

    /// Members read only for the paths below them are read in the same pass; one that is also
    /// read itself keeps its text.
    #[test]
    fn members_only_paths_go_through_are_read_in_the_same_pass() {
        let (table, nodes) = table_of(&["o.p.x", "w", "w.x", "a.x", "n.x", "s.x", "t.x"]);
        let payload = r#"{"o": {"skip": [1, {"x": 2}], "p": {"x": "deep"}}, "w": {"x": 5},
            "a": [{"x": 1}], "n": null, "s": "text", "t": true}"#;
        let record = Record::parse(payload, &table).unwrap();
        assert_eq!(text(&record, nodes[0]).as_deref(), Some("\"deep\""));
        assert_eq!(text(&record, nodes[1]).as_deref(), Some("{\"x\": 5}"));
        assert_eq!(text(&record, nodes[2]).as_deref(), Some("5"));
        assert_eq!(record.at(nodes[3]), At::Fails);
        assert_eq!(record.at(nodes[4]), At::Null);
        assert_eq!(record.at(nodes[5]), At::Fails);
        assert_eq!(record.at(nodes[6]), At::Fails);

        // Refused inside a passed-through member as anywhere else.
        for payload in [r#"{"o": {"p": [1,]}}"#, r#"{"o": {"p": {"x": 1} x}}"#] {
            assert!(Record::parse(payload, &table).is_err(), "{payload}");
        }
    }

    /// What the strict pre-check and jaq refused before the index is still refused, wherever
    /// it sits in the payload.
    #[test]
    fn refuses_what_is_not_json() {
        let (table, _) = table_of(&["a"]);
        for payload in [
            "",
            "{not json",
            r#"{"a": 1,}"#,
            r#"{"a": 1} trailing"#,
            r#"{"skip": [1, 2,]}"#,
            r#"{"skip": NaN}"#,
            r#"{"skip": 01}"#,
            "{\"skip\": \"tab\tinside\"}",
            r#"{"skip": "\x41"}"#,
            r#"{"skip": "\ud800"}"#,
            r#"{"a": "\udc00 alone"}"#,
            r#"{"skip": 1} # comment"#,
            "[1, 2",
        ] {
            assert!(Record::parse(payload, &table).is_err(), "{payload}");
        }
        for payload in [
            r#"{"a": "\ud83d\ude00 \u00e9 \n"}"#,
            r#"{"skip": 1e400, "a": 12345678901234567890123}"#,
            "  {\"a\": 1}  ",
            "\"a string record\"",
        ] {
            assert!(Record::parse(payload, &table).is_ok(), "{payload}");
        }
    }
}
