//! `{{ a.b }}` templates in manifests: base URLs, headers, query values, login requests and
//! write bodies are written with them.
//!
//! A template is text with `{{ path }}` holes; a path is dotted (`settings.base_url`,
//! `record.address.city`). There is deliberately no logic (no filters, no conditions): a
//! manifest that needs logic needs a Rust hook. In JSON bodies a string that is exactly one hole
//! keeps the value's JSON type (`"{{ record.openings }}"` stays a number); a hole whose value is
//! missing or null leaves the whole field out.

use serde_json::{Map, Value};

/// Every `{{ path }}` in `text`, in order, as written (trimmed).
pub fn holes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            // An unclosed hole is reported as its whole remainder, so `check` can point at it.
            found.push(after.trim().to_owned());
            break;
        };
        found.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    found
}

/// Whether `text` has a `{{` without its `}}`.
pub fn is_unclosed(text: &str) -> bool {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        match rest[start + 2..].find("}}") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return true,
        }
    }
    false
}

/// The value at a dotted `path` in `scope`.
pub fn lookup<'a>(scope: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(scope, |value, key| match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
        .filter(|value| !value.is_null())
}

/// Renders `text`, failing on the first hole whose value is missing.
pub fn render(text: &str, scope: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
        let path = after[..end].trim();
        match lookup(scope, path) {
            Some(Value::String(value)) => out.push_str(value),
            Some(value) => out.push_str(&value.to_string()),
            None => return Err(format!("{path} has no value")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders a JSON body template: strings are templates, objects and arrays are walked.
/// Returns `None` for a value whose holes are all empty (the caller leaves the field out).
pub fn render_json(template: &Value, scope: &Value) -> Option<Value> {
    match template {
        Value::String(text) => {
            let holes = holes(text);
            if holes.is_empty() {
                return Some(template.clone());
            }
            let whole = text.trim();
            if holes.len() == 1 && whole.starts_with("{{") && whole.ends_with("}}") {
                return lookup(scope, &holes[0]).cloned();
            }
            render(text, scope).ok().map(Value::String)
        }
        Value::Object(fields) => {
            let rendered: Map<String, Value> = fields
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), render_json(value, scope)?)))
                .collect();
            (!rendered.is_empty() || fields.is_empty()).then_some(Value::Object(rendered))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| render_json(item, scope))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Every template string inside a JSON template.
pub fn json_strings(template: &Value) -> Vec<&str> {
    match template {
        Value::String(text) => vec![text.as_str()],
        Value::Object(fields) => fields.values().flat_map(json_strings).collect(),
        Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_text_and_keeps_types_in_json() {
        let scope =
            json!({"settings": {"base": "https://x.example"}, "record": {"n": 3, "e": null}});
        assert_eq!(
            render("{{ settings.base }}/v1", &scope).unwrap(),
            "https://x.example/v1"
        );
        assert!(render("{{ settings.none }}", &scope).is_err());
        assert!(render("{{ settings.base", &scope).is_err());
        let body = json!({"n": "{{ record.n }}", "e": "{{ record.e }}", "t": "n={{ record.n }}", "k": [1]});
        assert_eq!(
            render_json(&body, &scope).unwrap(),
            json!({"n": 3, "t": "n=3", "k": [1]})
        );
        assert_eq!(holes("a {{ x.y }} b {{z}}"), vec!["x.y", "z"]);
        assert!(is_unclosed("a {{ x"));
        assert!(!is_unclosed("a {{ x }}"));
    }
}
