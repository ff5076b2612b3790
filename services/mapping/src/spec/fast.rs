//! The compiled fast path: simple jq pipelines run natively, with jq's exact results.
//!
//! Most spec fields are a path, maybe joined with literals and piped through one or two plain
//! filters: `.id | tostring`, `.email | ascii_downcase`, `.skillSet | split(",")`,
//! `.owner.firstName + " " + .owner.lastName`, `.dateAdded | epoch_millis_to_rfc3339`. Running
//! those through the jq interpreter costs more than the rest of a record's mapping, so they are
//! recognised when the spec compiles and evaluated here on the record's borrowed index
//! (`record`), borrowing from the payload wherever the result allows.
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

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::record::{At, PathTable, Record};

/// A recognised pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FastExpr {
    atoms: Vec<Atom>,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    /// A plain path and its node in the spec's [`PathTable`].
    Path(Vec<String>, usize),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    ToString,
    AsciiDowncase,
    AsciiUpcase,
    Numbers,
    Strings,
    Split(String),
    EpochMillis,
}

/// A value as the fast path holds it: borrowed from the payload (or the spec) where it can be.
#[derive(Debug, Clone)]
pub(crate) enum Piece<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    /// A number, as the record writes it (`615`, `146000.0`).
    Number(&'a str),
    /// What `split` gives.
    Strings(Vec<Cow<'a, str>>),
    /// An array or object of the record, as its JSON text.
    Composite(&'a RawValue),
}

impl<'a> Piece<'a> {
    /// The value whose JSON text is `found`; `None` for a string serde_json cannot decode (a
    /// lone surrogate, which `Record::parse` has already refused).
    pub(crate) fn of(found: &'a RawValue) -> Option<Piece<'a>> {
        let text = found.get();
        Some(match text.as_bytes().first()? {
            b'"' => {
                let inner = &text[1..text.len() - 1];
                if inner.as_bytes().contains(&b'\\') {
                    Piece::Str(Cow::Owned(serde_json::from_str(text).ok()?))
                } else {
                    // Without escapes the JSON text between the quotes is the string itself.
                    Piece::Str(Cow::Borrowed(inner))
                }
            }
            b'n' => Piece::Null,
            b't' => Piece::Bool(true),
            b'f' => Piece::Bool(false),
            b'{' | b'[' => Piece::Composite(found),
            _ => Piece::Number(text),
        })
    }
}

/// What a fast evaluation gave.
#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    Value(Piece<'a>),
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
    /// The fast form of `source`, or `None` when it is not in the recognised grammar. The paths
    /// it reads are added to `paths`.
    pub(crate) fn parse(source: &str, paths: &mut PathTable) -> Option<FastExpr> {
        let tokens = tokens(source)?;
        let mut rest = tokens.as_slice();
        let mut atoms = Vec::new();
        loop {
            match rest.first()? {
                Token::Path(path) => {
                    atoms.push(Atom::Path(path.clone(), paths.node(path)));
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
                ] if name == "split" => (Step::Split(sep.clone()), 5),
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

    /// True when the pipeline gives a list (it splits a string), never a single value.
    pub(crate) fn yields_list(&self) -> bool {
        self.steps.iter().any(|step| matches!(step, Step::Split(_)))
    }

    /// The record paths the pipeline reads, in order.
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        self.atoms
            .iter()
            .filter_map(|atom| match atom {
                Atom::Path(keys, _) => Some(keys.clone()),
                Atom::Text(_) => None,
            })
            .collect()
    }

    /// Runs the pipeline on `record`, borrowing from it wherever the result allows.
    pub(crate) fn eval<'a>(&'a self, record: &Record<'a>) -> Outcome<'a> {
        let mut atoms = self.atoms.iter();
        let Some(first) = atoms.next() else {
            return Outcome::Fallback;
        };
        let Some(mut value) = atom(first, record) else {
            return Outcome::Fallback;
        };
        for next in atoms {
            let Some(right) = atom(next, record) else {
                return Outcome::Fallback;
            };
            value = match (value, right) {
                (Piece::Null, right) => right,
                (left, Piece::Null) => left,
                (Piece::Str(left), Piece::Str(right)) => {
                    Piece::Str(Cow::Owned(left.into_owned() + &right))
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
fn atom<'a>(atom: &'a Atom, record: &Record<'a>) -> Option<Piece<'a>> {
    match atom {
        Atom::Text(text) => Some(Piece::Str(Cow::Borrowed(text))),
        Atom::Path(_, node) => match record.at(*node) {
            At::Value(found) => Piece::of(found),
            At::Null => Some(Piece::Null),
            At::Fails => None,
        },
    }
}

fn apply<'a>(step: &'a Step, value: Piece<'a>) -> Outcome<'a> {
    let literal = |text: &'static str| Outcome::Value(Piece::Str(Cow::Borrowed(text)));
    match (step, value) {
        (Step::ToString, value @ Piece::Str(_)) => Outcome::Value(value),
        // jq's `tostring` is the value's JSON text as jaq writes it: a number as the record
        // wrote it, except `-0`, which jaq reads as the integer 0.
        (Step::ToString, Piece::Null) => literal("null"),
        (Step::ToString, Piece::Bool(flag)) => literal(if flag { "true" } else { "false" }),
        (Step::ToString, Piece::Number("-0")) => literal("0"),
        (Step::ToString, Piece::Number(number)) => {
            Outcome::Value(Piece::Str(Cow::Borrowed(number)))
        }
        (Step::AsciiDowncase, Piece::Str(text)) => Outcome::Value(Piece::Str(recase(text, false))),
        (Step::AsciiUpcase, Piece::Str(text)) => Outcome::Value(Piece::Str(recase(text, true))),
        (Step::Numbers, value @ Piece::Number(_)) => Outcome::Value(value),
        (Step::Numbers, _) => Outcome::Empty,
        (Step::Strings, value @ Piece::Str(_)) => Outcome::Value(value),
        (Step::Strings, _) => Outcome::Empty,
        (Step::Split(sep), Piece::Str(text)) if !sep.is_empty() => {
            // jq splits "" into no parts at all.
            let parts = match text {
                _ if text.is_empty() => Vec::new(),
                Cow::Borrowed(text) => text.split(sep.as_str()).map(Cow::Borrowed).collect(),
                Cow::Owned(text) => text
                    .split(sep.as_str())
                    .map(|part| Cow::Owned(part.to_owned()))
                    .collect(),
            };
            Outcome::Value(Piece::Strings(parts))
        }
        (Step::EpochMillis, Piece::Null) => Outcome::Value(Piece::Null),
        // An integer jaq holds as a machine integer (the text parses as one, `-0` included).
        (Step::EpochMillis, Piece::Number(number)) => {
            match number.parse::<i64>().ok().and_then(epoch_millis) {
                Some(text) => Outcome::Value(Piece::Str(Cow::Owned(text))),
                None => Outcome::Fallback,
            }
        }
        _ => Outcome::Fallback,
    }
}

/// ASCII letters in one case; text already in that case stays borrowed.
fn recase(text: Cow<'_, str>, upper: bool) -> Cow<'_, str> {
    let other_case = |byte: &u8| {
        if upper {
            byte.is_ascii_lowercase()
        } else {
            byte.is_ascii_uppercase()
        }
    };
    if !text.as_bytes().iter().any(other_case) {
        return text;
    }
    Cow::Owned(if upper {
        text.to_ascii_uppercase()
    } else {
        text.to_ascii_lowercase()
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
    // Digits pushed into one buffer of the final size, without the formatting machinery:
    // this runs for every timestamp of every record.
    let mut text = String::with_capacity(24);
    push_digits(&mut text, year, 4);
    text.push('-');
    push_digits(&mut text, month, 2);
    text.push('-');
    push_digits(&mut text, day, 2);
    text.push('T');
    push_digits(&mut text, of_day / 3600, 2);
    text.push(':');
    push_digits(&mut text, of_day % 3600 / 60, 2);
    text.push(':');
    push_digits(&mut text, of_day % 60, 2);
    if fraction != 0 {
        text.push('.');
        push_digits(&mut text, fraction, 3);
    }
    text.push('Z');
    Some(text)
}

/// Appends the last `width` decimal digits of `value` (non-negative), zero-padded.
fn push_digits(text: &mut String, value: i64, width: u32) {
    for position in (0..width).rev() {
        let digit = (value / 10_i64.pow(position)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
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
