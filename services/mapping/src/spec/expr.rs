//! jq expressions, compiled once with jaq and run per record.
//!
//! Plain field paths such as `.address.city` skip jaq entirely: they are read from the record's
//! borrowed index (`record`), which is what most spec fields are, and so are the simple
//! pipelines of `fast`. Everything else runs as a jaq filter over the standard library
//! minus the filters that would let a spec read the process environment, the clock or stop the
//! process (`env`, `$ENV`, `now`, `halt`, `input`, ...), plus a small Plugboard prelude.

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::{Num, Val};
use serde_json::Value;

use super::fast::{FastExpr, Outcome, Piece};
use super::record::{At, PathTable, Record};

type Data = JustLut<Val>;

/// Filters a spec may not call: they read the environment or the clock (so a spec could leak a
/// secret or make hashes unstable), write partner data to stderr, or stop the run. Both the
/// native filters and the standard definitions built on them are left out, so a spec that
/// uses one fails to compile with "undefined filter".
const FORBIDDEN: &[&str] = &[
    "env",
    "now",
    "localtime",
    "strflocaltime",
    "halt",
    "halt_error",
    "debug",
    "debug_empty",
    "stderr",
    "stderr_empty",
    "input_filename",
];

/// Definitions every expression may call, beside jq's standard library.
///
/// `epoch_millis_to_rfc3339` turns epoch milliseconds (Bullhorn and many other APIs) into an
/// RFC 3339 UTC string, keeping milliseconds when there are any and passing null through.
const PRELUDE: &str = r#"
def epoch_millis_to_rfc3339:
  if . == null then null
  else (. | floor) as $ms
    | ($ms / 1000 | floor) as $s
    | ($ms - $s * 1000) as $frac
    | ($s | todate) as $text
    | if $frac == 0 then $text
      else $text[:-1] + "." + ("00" + ($frac | tostring))[-3:] + "Z"
      end
  end;
def epoch_seconds_to_rfc3339: if . == null then null else floor | todate end;
"#;

/// One compiled expression.
pub(crate) struct Expr {
    source: String,
    kind: Kind,
}

enum Kind {
    /// `.a.b.c`: read from the record's index (the node in the spec's `PathTable`).
    Path(Vec<String>, usize),
    /// A simple pipeline run natively, with the jaq filter for the cases it leaves to jq.
    Fast(FastExpr, jaq_core::Filter<Data>),
    Jq(jaq_core::Filter<Data>),
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Compiles `source`, adding the paths it reads to `paths`; the error is a one-line
    /// description of every problem jaq found.
    pub(crate) fn compile(source: &str, paths: &mut PathTable) -> Result<Expr, String> {
        let source = source.trim();
        if source.is_empty() {
            return Err("the expression is empty".to_owned());
        }
        if let Some(path) = plain_path(source) {
            let node = paths.node(&path);
            return Ok(Expr {
                source: source.to_owned(),
                kind: Kind::Path(path, node),
            });
        }
        let filter = compile_jq(source)?;
        let kind = match FastExpr::parse(source, paths) {
            Some(fast) => Kind::Fast(fast, filter),
            None => Kind::Jq(filter),
        };
        Ok(Expr {
            source: source.to_owned(),
            kind,
        })
    }

    /// The same expression without the fast path, to check the two agree.
    #[cfg(test)]
    pub(crate) fn compile_jq_only(source: &str) -> Result<Expr, String> {
        Ok(Expr {
            source: source.to_owned(),
            kind: Kind::Jq(compile_jq(source)?),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Why `source` is not a jq expression at all (a syntax error, an unknown function), if
    /// it is not one.
    pub(crate) fn jq_error(source: &str) -> Option<String> {
        compile_jq(source).err()
    }

    /// The plain path the expression starts from (`.payRate // empty | tostring` starts from
    /// `payRate`), used to show the partner value when the expression fails.
    pub(crate) fn source_path(&self) -> Option<Vec<String>> {
        match &self.kind {
            Kind::Path(path, _) => Some(path.clone()),
            Kind::Fast(..) | Kind::Jq(_) => {
                let end = self
                    .source
                    .char_indices()
                    .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
                    .map_or(self.source.len(), |(index, _)| index);
                plain_path(self.source[..end].trim_end_matches('.'))
            }
        }
    }

    /// The paths the expression is known to read: every path of a plain or fast-path
    /// expression, the leading path of any other (jq can read anything; this is what is sure).
    pub(crate) fn read_paths(&self) -> Vec<Vec<String>> {
        match &self.kind {
            Kind::Path(path, _) => vec![path.clone()],
            Kind::Fast(fast, _) => fast.paths(),
            Kind::Jq(_) => self.source_path().into_iter().collect(),
        }
    }

    /// Runs the expression on `input`. No output, `null` and `""` all mean "no value" (proto3
    /// cannot tell an empty string from an unset one either); more than one output is an
    /// error, because a canonical field holds one value.
    pub(crate) fn eval(&self, record: &Record<'_>) -> Result<Option<Value>, String> {
        let value = match &self.kind {
            Kind::Path(path, node) => {
                return match record.at(*node) {
                    At::Value(found) => match Piece::of(found) {
                        Some(piece) => Ok(some_value(piece_to_json(piece)?)),
                        None => walk(record.jaq_value()?, path)
                            .map(|value| to_json(&value).ok().and_then(some_value)),
                    },
                    At::Null => Ok(None),
                    // Only for the error message.
                    At::Fails => walk(record.jaq_value()?, path).map(|_| None),
                };
            }
            Kind::Fast(fast, filter) => match fast.eval(record) {
                Outcome::Value(piece) => return Ok(some_value(piece_to_json(piece)?)),
                Outcome::Empty => return Ok(None),
                Outcome::Fallback => match run_jq(filter, record.jaq_value()?)? {
                    Some(value) => value,
                    None => return Ok(None),
                },
            },
            Kind::Jq(filter) => match run_jq(filter, record.jaq_value()?)? {
                Some(value) => value,
                None => return Ok(None),
            },
        };
        Ok(some_value(to_json(&value)?))
    }
}

/// The JSON value of a fast-path result, exactly as converting jaq's value would give it.
fn piece_to_json(piece: Piece<'_>) -> Result<Value, String> {
    Ok(match piece {
        Piece::Null => Value::Null,
        Piece::Bool(flag) => Value::Bool(flag),
        Piece::Str(text) => Value::String(text.into_owned()),
        Piece::Number(number) => number_text_to_json(number)?,
        Piece::Strings(parts) => Value::Array(
            parts
                .into_iter()
                .map(|part| Value::String(part.into_owned()))
                .collect(),
        ),
        // Arrays and objects of the record go through jaq's value, so numbers and repeated
        // keys inside them come out as they always have.
        Piece::Composite(found) => to_json(&parse_payload(found.get())?)?,
    })
}

/// A JSON number's text as jaq reads it and then [`to_json`] converts it: integers that fit
/// a machine word exactly, everything else through serde_json's reading of the text.
fn number_text_to_json(text: &str) -> Result<Value, String> {
    if let Ok(int) = text.parse::<i64>() {
        return Ok(Value::from(int));
    }
    serde_json::from_str::<serde_json::Number>(text)
        .map(Value::Number)
        .map_err(|_| format!("{text} is not a JSON number"))
}

/// Compiles `source` with jaq over the allowed standard library and the prelude.
fn compile_jq(source: &str) -> Result<jaq_core::Filter<Data>, String> {
    let prelude = jaq_core::load::parse(PRELUDE, |parser| parser.defs())
        .expect("the plugboard prelude is valid jq (checked by a unit test)");
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|def| !FORBIDDEN.contains(&def.name))
        .chain(prelude);
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !FORBIDDEN.contains(name));
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: source,
                path: (),
            },
        )
        .map_err(|errors| describe_load_errors(&errors))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .iter()
                .flat_map(|(_, undefined)| undefined.iter())
                .map(|(name, kind)| format!("undefined {} `{name}`", kind.as_str()))
                .collect();
            names.join("; ")
        })
}

/// `None` for the values that mean "no value": null, "" and `{}`. Inside the objects and
/// arrays an expression builds, null members and items mean "no value" too and are left out,
/// and so are the objects that leaves empty: `{url: .url}` with no url is no value.
fn some_value(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(without_nulls).collect(),
        )),
        Value::Object(object) => {
            let object: serde_json::Map<String, Value> = object
                .into_iter()
                .filter_map(|(key, value)| without_nulls(value).map(|value| (key, value)))
                .collect();
            (!object.is_empty()).then_some(Value::Object(object))
        }
        value => Some(value),
    }
}

fn without_nulls(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        nested @ (Value::Array(_) | Value::Object(_)) => some_value(nested),
        other => Some(other),
    }
}

/// The one output of `filter`, `None` for no output, an error for more than one.
fn run_jq(filter: &jaq_core::Filter<Data>, input: &Val) -> Result<Option<Val>, String> {
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    let mut outputs = filter.id.run((ctx, input.clone()));
    let first = match outputs.next() {
        None => return Ok(None),
        Some(Ok(value)) => value,
        Some(Err(exception)) => return Err(describe_exception(exception)),
    };
    if outputs.next().is_some() {
        return Err(
            "the expression produced more than one value; collect them with [...]".to_owned(),
        );
    }
    Ok(Some(first))
}

fn describe_exception(exception: jaq_core::Exn<'_, Val>) -> String {
    match exception.get_err() {
        Ok(error) => error.to_string(),
        Err(_) => "the expression stopped without a value".to_owned(),
    }
}

fn describe_load_errors(errors: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut messages = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(items) => {
                for (path, reason) in items {
                    messages.push(format!("cannot load module {path}: {reason}"));
                }
            }
            Error::Lex(items) => {
                for (expected, found) in items {
                    messages.push(format!("expected {} {}", expected.as_str(), near(found)));
                }
            }
            Error::Parse(items) => {
                for (expected, found) in items {
                    messages.push(format!("expected {} {}", expected.as_str(), near(found)));
                }
            }
        }
    }
    messages.join("; ")
}

fn near(found: &str) -> String {
    if found.is_empty() {
        return "at the end of the expression".to_owned();
    }
    let head: String = found.chars().take(20).collect();
    format!("near {head:?}")
}

/// `.a.b.c` with identifier keys, else `None`.
pub(crate) fn plain_path(source: &str) -> Option<Vec<String>> {
    let rest = source.strip_prefix('.')?;
    let mut keys = Vec::new();
    for key in rest.split('.') {
        let mut chars = key.chars();
        let first = chars.next()?;
        let valid = (first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        keys.push(key.to_owned());
    }
    Some(keys)
}

/// Walks `path` like jq's `.a.b`: null stays null, indexing anything but an object fails.
pub(crate) fn walk(input: &Val, path: &[String]) -> Result<Val, String> {
    let mut current = input.clone();
    for key in path {
        current = match &current {
            Val::Null => Val::Null,
            Val::Obj(map) => map
                .get(&Val::from(key.clone()))
                .cloned()
                .unwrap_or(Val::Null),
            other => {
                return Err(format!("cannot index {} with \"{key}\"", type_name(other)));
            }
        };
    }
    Ok(current)
}

fn type_name(value: &Val) -> &'static str {
    match value {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::TStr(_) | Val::BStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

/// Parses a partner payload into a jaq value. The caller has already checked it is JSON.
pub(crate) fn parse_payload(payload_json: &str) -> Result<Val, String> {
    jaq_json::read::parse_single(payload_json.as_bytes()).map_err(|error| format!("{error:?}"))
}

/// Converts a jaq value into JSON for serde. Decimal literals keep their digits where JSON can.
pub(crate) fn to_json(value: &Val) -> Result<Value, String> {
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(flag) => Value::Bool(*flag),
        Val::Num(number) => number_to_json(number)?,
        Val::TStr(bytes) | Val::BStr(bytes) => Value::String(text_of(bytes)),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Val::Obj(map) => {
            let mut object = serde_json::Map::new();
            for (key, item) in map.iter() {
                let key = match key {
                    Val::TStr(bytes) | Val::BStr(bytes) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    other => return Err(format!("object key {other} is not a string")),
                };
                object.insert(key, to_json(item)?);
            }
            Value::Object(object)
        }
    })
}

/// The bytes as text: copied when they are UTF-8 (partner JSON always is), else with U+FFFD.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn number_to_json(number: &Num) -> Result<Value, String> {
    let text = match number {
        Num::Int(int) => return Ok(Value::from(*int as i64)),
        Num::Float(float) => {
            return serde_json::Number::from_f64(*float)
                .map(Value::Number)
                .ok_or_else(|| format!("{float} is not a JSON number"));
        }
        Num::BigInt(big) => big.to_string(),
        Num::Dec(text) => text.to_string(),
    };
    serde_json::from_str::<serde_json::Number>(&text)
        .map(Value::Number)
        .map_err(|_| format!("{text} is not a JSON number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> Result<Expr, String> {
        Expr::compile(source, &mut PathTable::default())
    }

    fn run(source: &str, input: &str) -> Result<Option<Value>, String> {
        let mut paths = PathTable::default();
        let expr = Expr::compile(source, &mut paths)?;
        expr.eval(&Record::parse(input, &paths)?)
    }

    #[test]
    fn plain_paths_take_the_fast_path_and_match_jq() {
        assert!(matches!(compile(".a.b").unwrap().kind, Kind::Path(..)));
        assert!(matches!(compile(".a | .b").unwrap().kind, Kind::Jq(_)));
        assert_eq!(run(".a.b", r#"{"a":{"b":3}}"#), Ok(Some(Value::from(3))));
        assert_eq!(run(".a.b", r#"{"a":null}"#), Ok(None));
        assert_eq!(run(".a.b", r#"{}"#), Ok(None));
        let error = run(".a.b", r#"{"a":"text"}"#).unwrap_err();
        assert!(error.contains("cannot index string"), "{error}");
    }

    /// Every plain path and fast-path expression gives what jaq gives, on values of every JSON
    /// type.
    #[test]
    fn the_fast_path_agrees_with_jaq() {
        let expressions = [
            ".a",
            ".o.x",
            ".o.x.deeper",
            ".a | tostring",
            ".a | ascii_downcase",
            ".a | ascii_upcase",
            ".a | numbers",
            ".a | strings",
            ".a | numbers | tostring",
            ".a | split(\",\")",
            ".a | split(\", \") | tostring",
            ".a | epoch_millis_to_rfc3339",
            ".a + \" \" + .b",
            ".a + .b | ascii_downcase",
            ".o.x + \"-\" + .o.y",
            "\"lit\"",
        ];
        let values = [
            "null",
            "true",
            "0",
            "-3",
            "45.50",
            "146000.0",
            "1e3",
            "12345678901234567890123",
            "1585714050753",
            "1585714050000",
            "-1",
            "253402300800000",
            "1585714050753.5",
            "\"\"",
            "\"Chloé.Garcia0@Example-Mail.COM\"",
            "\"a,b,,c\"",
            "\"a, b\"",
            "\",\"",
            "[1,2]",
            "{\"k\":1}",
            // Cases the borrowed record reads differently: escapes, `-0`, exponents, text
            // already in one case.
            "-0",
            "-0.0",
            "1E5",
            "1.0",
            "\"lower.case@example.com\"",
            "\"ESCAPED\\u00e9,\\\"quoted\\\",a\\u002cb\"",
            "[\"a\",null]",
            "\"tab\\there\"",
        ];
        let mut fast_hits = 0;
        for source in expressions {
            let mut paths = PathTable::default();
            let fast = Expr::compile(source, &mut paths).unwrap();
            let recognised = match &fast.kind {
                Kind::Fast(recognised, _) => Some(recognised),
                Kind::Path(..) => None,
                Kind::Jq(_) => panic!("{source} is not fast"),
            };
            let jq = Expr::compile_jq_only(source).unwrap();
            for a in values {
                for b in ["null", "\"x\"", "7"] {
                    let input = format!(r#"{{"a":{a},"b":{b},"o":{{"x":{a},"y":{b}}}}}"#);
                    let input = Record::parse(&input, &paths).unwrap();
                    if recognised
                        .is_some_and(|fast| !matches!(fast.eval(&input), Outcome::Fallback))
                    {
                        fast_hits += 1;
                    }
                    let (fast, jq) = (fast.eval(&input), jq.eval(&input));
                    // A plain path's failure has its own wording ("cannot index boolean"
                    // where jaq says "cannot index true"); that it fails is what must agree.
                    if recognised.is_none() && fast.is_err() && jq.is_err() {
                        continue;
                    }
                    assert_eq!(fast, jq, "{source} on a={a} b={b}");
                }
            }
        }
        // The comparison is only worth something if the fast path answered most cases itself.
        assert!(fast_hits > 350, "{fast_hits}");
    }

    #[test]
    fn only_the_simple_grammar_is_fast() {
        for source in [
            ".a | tostring | tostring",
            ".a // empty | tostring",
            ".a | split(\"x\"; \"g\")",
            ".a | \"\\(.)\"",
            "[.a]",
            ".a | length",
            ".a - .b",
        ] {
            let expr = compile(source).unwrap();
            let fast = matches!(expr.kind, Kind::Fast(..));
            assert_eq!(fast, source == ".a | tostring | tostring", "{source}");
        }
    }

    #[test]
    fn prelude_converts_epoch_millis() {
        assert_eq!(
            run(".t | epoch_millis_to_rfc3339", r#"{"t":1700000000123}"#),
            Ok(Some(Value::from("2023-11-14T22:13:20.123Z")))
        );
        assert_eq!(
            run(".t | epoch_millis_to_rfc3339", r#"{"t":1700000000000}"#),
            Ok(Some(Value::from("2023-11-14T22:13:20Z")))
        );
        assert_eq!(
            run(".t | epoch_millis_to_rfc3339", r#"{"t":1700000000007}"#),
            Ok(Some(Value::from("2023-11-14T22:13:20.007Z")))
        );
        assert_eq!(run(".t | epoch_millis_to_rfc3339", r#"{}"#), Ok(None));
    }

    #[test]
    fn environment_and_halt_are_not_available() {
        for source in [
            "env",
            "$ENV",
            "now",
            "halt",
            "halt_error",
            "debug",
            "input",
            "localtime",
        ] {
            let error = compile(source).unwrap_err();
            assert!(error.contains("undefined"), "{source}: {error}");
        }
    }

    #[test]
    fn syntax_errors_and_several_outputs_are_reported() {
        let error = compile(".a | (").unwrap_err();
        assert!(error.contains("expected"), "{error}");
        let error = run(".[]", r#"[1,2]"#).unwrap_err();
        assert!(error.contains("more than one value"), "{error}");
        assert_eq!(run("empty", "{}"), Ok(None));
    }

    #[test]
    fn decimals_keep_their_digits() {
        assert_eq!(
            run(".r | tostring", r#"{"r":45.50}"#),
            Ok(Some(Value::from("45.50")))
        );
        assert_eq!(
            run(".r", r#"{"r":45.50}"#),
            Ok(Some(serde_json::json!(45.50)))
        );
    }

    #[test]
    fn leading_path_is_found_for_error_context() {
        let expr = compile(".payRate | tostring").unwrap();
        assert_eq!(expr.source_path(), Some(vec!["payRate".to_owned()]));
        let expr = compile(".payRate // empty | tonumber").unwrap();
        assert_eq!(expr.source_path(), Some(vec!["payRate".to_owned()]));
        let expr = compile(".a.b[0]").unwrap();
        assert_eq!(
            expr.source_path(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        let expr = compile("[.a, .b]").unwrap();
        assert_eq!(expr.source_path(), None);
    }
}
