//! Affinda's document endpoints. Every call passes the gate first, in order: the Bearer key
//! (401), an armed 429 burst, an armed 500 burst.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::seed;
use super::state::{Shared, Stored, now};

/// Affinda's default and largest `limit`.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 300;

type Params = HashMap<String, String>;

/// `GET /v3/documents?offset=&limit=&include_data=`: `{count, next, previous, results}`.
pub async fn list(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers) {
        return *response;
    }
    // Err names the parameter that is not a number.
    let number = |key: &str, default: usize| match params.get(key) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| key.to_owned()),
    };
    let (offset, limit) = match (number("offset", 0), number("limit", DEFAULT_LIMIT)) {
        (Ok(offset), Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => (offset, limit),
        (Err(key), _) | (_, Err(key)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &key,
                "A valid integer is required.",
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "limit",
                "Ensure this value is 1 to 300.",
            );
        }
    };
    let include_data = params.get("include_data").is_some_and(|v| v == "true");
    let world = sandbox.world();
    let all: Vec<&Value> = world
        .documents
        .iter()
        .filter(|stored| stored.pending.is_none())
        .map(|stored| &stored.document)
        .chain(world.malformed.iter())
        .collect();
    let results: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|document| {
            let mut document = (*document).clone();
            if !include_data && let Some(object) = document.as_object_mut() {
                object.remove("data");
            }
            document
        })
        .collect();
    let page = |offset: usize| {
        let mut url = format!(
            "{}/v3/documents?limit={limit}&offset={offset}",
            origin(&headers)
        );
        if include_data {
            url.push_str("&include_data=true");
        }
        url
    };
    let next = (offset + limit < all.len()).then(|| page(offset + limit));
    let previous = (offset > 0).then(|| page(offset.saturating_sub(limit)));
    Json(json!({"count": all.len(), "next": next, "previous": previous, "results": results}))
        .into_response()
}

/// `POST /v3/documents` (multipart: `file`, `collection`, `wait`): 201 with the new document,
/// not yet parsed.
pub async fn upload(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers) {
        return *response;
    }
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut collection = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().unwrap_or("document").to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return error(StatusCode::BAD_REQUEST, &name, "The upload was cut short.");
                };
                match name.as_str() {
                    "file" => file = Some((file_name, bytes.to_vec())),
                    "collection" => collection = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(_) => return error(StatusCode::BAD_REQUEST, "file", "Not a multipart form."),
        }
    }
    let Some((file_name, content)) = file else {
        return error(
            StatusCode::BAD_REQUEST,
            "file",
            "Either file or url must be provided.",
        );
    };
    if collection.is_none_or(|c| c.is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            "collection",
            "Either collection or workspace must be provided.",
        );
    }
    let mut world = sandbox.world();
    world.stats.uploads += 1;
    let parse = parse(&sandbox.examples, &content, &mut world.generator);
    let document = world.new_document(&file_name, None);
    world.documents.push(Stored {
        document: document.clone(),
        pending: Some(parse.unwrap_or(Value::Null)),
        polls_left: sandbox.options.polls_until_ready,
    });
    (StatusCode::CREATED, Json(document)).into_response()
}

/// `GET /v3/documents/{identifier}`: the document; a new one's parse appears after
/// `polls_until_ready` asks (a document it cannot read is `failed`).
pub async fn document(
    State(sandbox): State<Shared>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers) {
        return *response;
    }
    let mut world = sandbox.world();
    world.stats.polls += 1;
    let Some(stored) = world
        .documents
        .iter_mut()
        .find(|stored| stored.document["meta"]["identifier"] == identifier.as_str())
    else {
        return error(StatusCode::NOT_FOUND, "identifier", "Not found.");
    };
    if stored.pending.is_some() {
        stored.polls_left = stored.polls_left.saturating_sub(1);
        if stored.polls_left == 0 {
            let parse = stored.pending.take().unwrap_or(Value::Null);
            let meta = &mut stored.document["meta"];
            if parse.is_null() {
                meta["failed"] = json!(true);
                meta["errorCode"] = json!("document_unreadable");
                meta["errorDetail"] = json!("No text could be read from the document.");
            } else {
                meta["ready"] = json!(true);
                meta["readyDt"] = json!(now());
                stored.document["data"] = parse;
            }
        }
    }
    Json(stored.document.clone()).into_response()
}

/// What the sandbox reads from a plain-text resume: the first line as the name, the first
/// word with an `@` as the email, a line `Skills: a, b` as skills. `None` when it finds no name.
fn parse(
    examples: &seed::Examples,
    content: &[u8],
    generator: &mut seed::Generator,
) -> Option<Value> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let name = lines.next()?;
    let (first, last) = name.split_once(' ')?;
    let email = text
        .split_whitespace()
        .find(|word| word.contains('@'))
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.'))
        .unwrap_or_default();
    let skills: Vec<String> = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Skills:"))
        .map(|list| {
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(seed::resume_data(
        examples,
        first,
        last.trim(),
        email,
        &skills,
        generator,
    ))
}

/// Authentication and faults.
fn admit(sandbox: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let mut world = sandbox.world();
    world.stats.requests += 1;
    let expected = format!("Bearer {}", sandbox.options.api_key);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == expected);
    if !authorized {
        world.stats.unauthorized += 1;
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "non_field_errors",
            "Invalid token.",
        )));
    }
    if world.faults.rate_limit_burst > 0 {
        world.faults.rate_limit_burst -= 1;
        world.stats.rate_limited += 1;
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "non_field_errors",
            "Request was throttled.",
        );
        if let Ok(value) = HeaderValue::from_str(&world.faults.retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(Box::new(response));
    }
    if world.faults.server_error_burst > 0 {
        world.faults.server_error_burst -= 1;
        world.stats.server_errors += 1;
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "non_field_errors",
            "A server error occurred.",
        )));
    }
    Ok(())
}

/// Affinda's error body.
pub fn error(status: StatusCode, attr: &str, detail: &str) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "client_error"
    };
    let body =
        json!({"type": kind, "errors": [{"attr": attr, "code": "invalid", "detail": detail}]});
    (status, Json(body)).into_response()
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}
