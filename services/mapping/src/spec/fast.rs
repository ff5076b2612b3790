//! The compiled fast path: simple jq pipelines run natively, with jq's exact results.
//!
//! Most spec fields are a path, maybe joined with literals and piped through one or two plain
//! filters: `.id | tostring`, `.email | ascii_downcase`, `.skillSet | split(",")`,
//! `.owner.firstName + " " + .owner.lastName`, `.dateAdded | epoch_millis_to_rfc3339`. Running
//! those through the jq interpreter costs more than the rest of a record's mapping, so they are
//! recognised when the spec compiles and evaluated here directly on the parsed record.
//!
//! The grammar recognised (anything else goes to jaq):
//!
//! ```text
//! pipeline := sum ("|" step)*
//! sum      := atom ("+" atom)*
//! atom     := .plain.path | "string literal without escapes"
//! step     := tostring | ascii_downcase | ascii_upcase | numbers | strings
//!           | split("literal") | epoch_millis_to_rfc3339
//! ```
//!
//! Every step handles only the input types whose jq result is certain (strings for
//! `ascii_downcase`, integers for `epoch_millis_to_rfc3339`, ...). On anything else it answers
//! [`Outcome::Fallback`] and the caller runs the same expression through jaq, so errors and corner
//! cases are jaq's own. A unit test checks fast and jaq results agree.

use std::fmt::Write as _;

use jaq_json::{Num, Val};

/// A recognised pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FastExpr {
    atoms: Vec<Atom>,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Path(Vec<Key>),
    Text(String),
}

/// An object key looked up in a jaq object without building a `Val` for it (`Val` is neither
/// `Send` nor `Sync`, so a compiled spec cannot hold one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key(Box<[u8]>);

impl Key {
    pub(crate) fn new(key: &str) -> Key {
        Key(key.as_bytes().into())
    }
}

/// Hashes exactly as jaq hashes a string `Val`: a tag byte 5, then the bytes as a slice.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(5);
        self.0.hash(state);
    }
}

impl indexmap::Equivalent<Val> for Key {
    fn equivalent(&self, key: &Val) -> bool {
        matches!(key, Val::TStr(bytes) | Val::BStr(bytes) if bytes.as_ref() == &*self.0)
    }
}

/// Looks `keys` up from `input` like jq's `.a.b`: `Some(None)` (null) past a missing key or a
/// null, `None` when a non-object is indexed (jq fails there).
pub(crate) fn walk_ref<'a>(input: &'a Val, keys: &[Key]) -> Option<Option<&'a Val>> {
    let mut current = input;
    for key in keys {
        current = match current {
            Val::Null => return Some(None),
            Val::Obj(map) => match map.get(key) {
                Some(value) => value,
                None => return Some(None),
            },
            _ => return None,
        };
    }
    Some(Some(current))
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    ToString,
    AsciiDowncase,
    AsciiUpcase,
    Numbers,
    Strings,
    Split(Vec<u8>),
    EpochMillis,
}

/// What a fast evaluation gave.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Value(Val),
    /// The pipeline produced no output (`numbers` on a string, say).
    Empty,
    /// Not a case the fast path is sure of: run the expression through jaq.
    Fallback,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(Vec<String>),
    Text(String),
    Ident(String),
    Pipe,
    Plus,
    Open,
    Close,
}

fn tokens(source: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '|' => out.push(Token::Pipe),
            '+' => out.push(Token::Plus),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '"' => {
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        (_, '"') => break,
                        // Escapes and interpolation are jq's business.
                        (_, '\\') => return None,
                        (_, c) => text.push(c),
                    }
                }
                out.push(Token::Text(text));
            }
            '.' => {
                let mut end = start + 1;
                while let Some(&(index, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        end = index + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Path(super::expr::plain_path(&source[start..end])?));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start + 1;
                while let Some(&(index, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        end = index + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Ident(source[start..end].to_owned()));
            }
            _ => return None,
        }
    }
    Some(out)
}

impl FastExpr {
    /// The fast form of `source`, or `None` when it is not in the recognised grammar.
    pub(crate) fn parse(source: &str) -> Option<FastExpr> {
        let tokens = tokens(source)?;
        let mut rest = tokens.as_slice();
        let mut atoms = Vec::new();
        loop {
            match rest.first()? {
                Token::Path(path) => {
                    atoms.push(Atom::Path(path.iter().map(|key| Key::new(key)).collect()));
                }
                Token::Text(text) => atoms.push(Atom::Text(text.clone())),
                _ => return None,
            }
            rest = &rest[1..];
            match rest.first() {
                Some(Token::Plus) => rest = &rest[1..],
                _ => break,
            }
        }
        let mut steps = Vec::new();
        while let Some(Token::Pipe) = rest.first() {
            let (step, used) = match &rest[1..] {
                [
                    Token::Ident(name),
                    Token::Open,
                    Token::Text(sep),
                    Token::Close,
                    ..,
                ] if name == "split" => (Step::Split(sep.as_bytes().to_vec()), 5),
                [Token::Ident(name), ..] => {
                    let step = match name.as_str() {
                        "tostring" => Step::ToString,
                        "ascii_downcase" => Step::AsciiDowncase,
                        "ascii_upcase" => Step::AsciiUpcase,
                        "numbers" => Step::Numbers,
                        "strings" => Step::Strings,
                        "epoch_millis_to_rfc3339" => Step::EpochMillis,
                        _ => return None,
                    };
                    (step, 2)
                }
                _ => return None,
            };
            // `split` without parentheses, or an identifier followed by `(`, is not ours.
            if matches!(rest.get(used), Some(Token::Open)) {
                return None;
            }
            steps.push(step);
            rest = &rest[used..];
        }
        rest.is_empty().then_some(FastExpr { atoms, steps })
    }

    /// The record paths the pipeline reads, in order.
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        self.atoms
            .iter()
            .filter_map(|atom| match atom {
                Atom::Path(keys) => Some(
                    keys.iter()
                        .map(|key| String::from_utf8_lossy(&key.0).into_owned())
                        .collect(),
                ),
                Atom::Text(_) => None,
            })
            .collect()
    }

    /// Runs the pipeline on `input`; paths are walked without cloning intermediate objects.
    pub(crate) fn eval(&self, input: &Val) -> Outcome {
        let mut atoms = self.atoms.iter();
        let Some(first) = atoms.next() else {
            return Outcome::Fallback;
        };
        let Some(mut value) = atom(first, input) else {
            return Outcome::Fallback;
        };
        for next in atoms {
            let Some(right) = atom(next, input) else {
                return Outcome::Fallback;
            };
            value = match (value, right) {
                (Val::Null, right) => right,
                (left, Val::Null) => left,
                (Val::TStr(left), Val::TStr(right)) => {
                    let mut joined = Vec::with_capacity(left.len() + right.len());
                    joined.extend_from_slice(&left);
                    joined.extend_from_slice(&right);
                    Val::utf8_str(joined)
                }
                _ => return Outcome::Fallback,
            };
        }
        for step in &self.steps {
            value = match apply(step, value) {
                Outcome::Value(value) => value,
                other => return other,
            };
        }
        Outcome::Value(value)
    }
}

/// `None` when the path meets something jq would refuse to index (jaq reports it).
fn atom(atom: &Atom, input: &Val) -> Option<Val> {
    match atom {
        Atom::Text(text) => Some(Val::from(text.clone())),
        Atom::Path(keys) => walk_ref(input, keys).map(|found| found.cloned().unwrap_or_default()),
    }
}

fn apply(step: &Step, value: Val) -> Outcome {
    match (step, value) {
        (Step::ToString, value @ Val::TStr(_)) => Outcome::Value(value),
        // jq's `tostring` is `"\(.)"`: the value's JSON text, as jaq writes it.
        (Step::ToString, value @ (Val::Null | Val::Bool(_) | Val::Num(_))) => {
            Outcome::Value(Val::from(value.to_string()))
        }
        (Step::AsciiDowncase, Val::TStr(text)) => {
            Outcome::Value(Val::utf8_str(text.to_ascii_lowercase()))
        }
        (Step::AsciiUpcase, Val::TStr(text)) => {
            Outcome::Value(Val::utf8_str(text.to_ascii_uppercase()))
        }
        (Step::Numbers, value @ Val::Num(_)) => Outcome::Value(value),
        (Step::Numbers, Val::Null | Val::Bool(_) | Val::TStr(_) | Val::Arr(_) | Val::Obj(_)) => {
            Outcome::Empty
        }
        (Step::Strings, value @ Val::TStr(_)) => Outcome::Value(value),
        (Step::Strings, Val::Null | Val::Bool(_) | Val::Num(_) | Val::Arr(_) | Val::Obj(_)) => {
            Outcome::Empty
        }
        (Step::Split(sep), Val::TStr(text)) if !sep.is_empty() => {
            let parts: Vec<Val> = if text.is_empty() {
                Vec::new()
            } else {
                split_bytes(&text, sep)
                    .map(|part| Val::utf8_str(text.slice_ref(part)))
                    .collect()
            };
            Outcome::Value(Val::Arr(parts.into()))
        }
        (Step::EpochMillis, Val::Null) => Outcome::Value(Val::Null),
        (Step::EpochMillis, Val::Num(Num::Int(millis))) => match epoch_millis(millis as i64) {
            Some(text) => Outcome::Value(Val::from(text)),
            None => Outcome::Fallback,
        },
        _ => Outcome::Fallback,
    }
}

fn split_bytes<'a>(text: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(sep.len()).position(|window| window == sep) {
            Some(at) => {
                rest = Some(&current[at + sep.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// What the prelude's `epoch_millis_to_rfc3339` gives for an integer in 1970..=9999, else
/// `None` (jaq decides).
pub(crate) fn epoch_millis(millis: i64) -> Option<String> {
    if !(0..=253_402_300_799_999).contains(&millis) {
        return None;
    }
    let seconds = millis / 1000;
    let fraction = millis % 1000;
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    // One buffer of the final size: this runs for every timestamp of every record.
    let mut text = String::with_capacity(24);
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
    if fraction != 0 {
        let _ = write!(text, ".{fraction:03}");
    }
    text.push('Z');
    Some(text)
}

/// Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01 (non-negative here).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
