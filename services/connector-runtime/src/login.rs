//! The `login` auth scheme's requests: one or more steps made in order, each able to capture
//! values (from its JSON answer or from the redirect it answers with) for the steps after it.
//!
//! Bullhorn is the model: a headless OAuth authorize whose redirect carries a `code`, the code
//! exchange (single use, so never retried), then a REST login whose answer holds the session
//! token and the data centre's base URL.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::guard::check_target;
use crate::http::{Answer, Body, Http, Limiter, Request, SendOptions};
use crate::manifest::{Capture, LoginStep};
use crate::session::Settings;
use crate::template;

/// Makes the steps with `scope` (`settings` and `secret`) and returns the last answer.
pub async fn run_steps(
    steps: &[LoginStep],
    http: &Http,
    limiter: &Limiter,
    settings: &Settings,
    scope: &Value,
    allow_private: bool,
) -> Result<Value, Error> {
    let mut scope = scope.clone();
    let mut captured = Map::new();
    let mut last = Value::Null;
    for step in steps {
        if let Value::Object(fields) = &mut scope {
            fields.insert("steps".to_owned(), Value::Object(captured.clone()));
        }
        let request = build(step, settings, &scope, allow_private).await?;
        let accept_redirect = step
            .capture
            .values()
            .any(|capture| matches!(capture, Capture::Redirect { .. }));
        let options = SendOptions {
            retry: step.retry,
            accept_redirect,
            ..SendOptions::default()
        };
        let mut waits = 0;
        let response = match http.send_with(limiter, &request, options, &mut waits).await {
            Ok(Answer::Ok(response)) => response,
            Ok(Answer::Unauthorized) => {
                return Err(Error::CredentialsRejected(format!(
                    "login step {} answered 401",
                    step.name
                )));
            }
            Err(Error::PartnerRejected { status, message }) if matches!(status, 400 | 403) => {
                return Err(Error::CredentialsRejected(format!(
                    "login step {} answered {status}: {message}",
                    step.name
                )));
            }
            Err(error) => return Err(error),
        };
        let mut values = Map::new();
        for (name, capture) in &step.capture {
            let value = match capture {
                Capture::Pointer(pointer) => scalar_text(response.body.pointer(pointer))
                    .ok_or_else(|| {
                        Error::PartnerResponse(format!(
                            "login step {} answered without {pointer}",
                            step.name
                        ))
                    })?,
                Capture::Redirect { redirect_param } => redirect_param_of(
                    &step.name,
                    &request.url,
                    response.status,
                    response.location.as_deref(),
                    redirect_param,
                )?,
            };
            values.insert(name.clone(), Value::String(value));
        }
        captured.insert(step.name.clone(), Value::Object(values));
        last = response.body;
    }
    Ok(last)
}

async fn build(
    step: &LoginStep,
    settings: &Settings,
    scope: &Value,
    allow_private: bool,
) -> Result<Request, Error> {
    let render = |text: &str| template::render(text, scope).map_err(Error::InvalidSettings);
    let request = &step.request;
    let url = settings
        .base_url
        .join(&render(&request.url)?)
        .map_err(|e| Error::InvalidSettings(format!("login step {} url: {e}", step.name)))?;
    // Every step carries secrets: each target passes the guard.
    let url = check_target(url.as_str(), allow_private).await?;
    let pairs = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| Ok((k.clone(), render(v)?)))
            .collect::<Result<Vec<_>, Error>>()
    };
    let body = if let Some(json) = &request.json {
        Body::Json(template::render_json(json, scope).unwrap_or(Value::Null))
    } else if !request.form.is_empty() {
        Body::Form(pairs(&request.form)?)
    } else {
        Body::None
    };
    Ok(Request {
        method: request.method,
        url,
        headers: pairs(&request.headers)?,
        query: pairs(&request.query)?,
        body,
    })
}

/// A string or number as text.
fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The query parameter `param` of the redirect a step answered with.
fn redirect_param_of(
    step: &str,
    request_url: &reqwest::Url,
    status: u16,
    location: Option<&str>,
    param: &str,
) -> Result<String, Error> {
    if !(300..400).contains(&status) {
        // Partners show a login page instead of redirecting when they refuse the user.
        return Err(Error::CredentialsRejected(format!(
            "login step {step} answered {status} instead of redirecting"
        )));
    }
    let location = location.ok_or_else(|| {
        Error::PartnerResponse(format!("login step {step} redirected without a Location"))
    })?;
    let target = request_url
        .join(location)
        .map_err(|e| Error::PartnerResponse(format!("login step {step}: bad Location: {e}")))?;
    if let Some((_, error)) = target.query_pairs().find(|(key, _)| key == "error") {
        return Err(Error::CredentialsRejected(format!(
            "login step {step} was refused: {error}"
        )));
    }
    target
        .query_pairs()
        .find(|(key, _)| key == param)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Error::PartnerResponse(format!(
                "login step {step} redirected without a {param} parameter"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_params_and_oauth_errors() {
        let url = reqwest::Url::parse("https://auth.example/oauth/authorize").unwrap();
        let code = redirect_param_of("a", &url, 302, Some("/landing?code=x%2By&state=s"), "code");
        assert_eq!(code.unwrap(), "x+y");
        let refused = redirect_param_of("a", &url, 302, Some("/l?error=access_denied"), "code");
        assert!(matches!(refused, Err(Error::CredentialsRejected(_))));
        let page = redirect_param_of("a", &url, 200, None, "code");
        assert!(matches!(page, Err(Error::CredentialsRejected(_))));
        let bare = redirect_param_of("a", &url, 302, Some("/l"), "code");
        assert!(matches!(bare, Err(Error::PartnerResponse(_))));
    }
}
