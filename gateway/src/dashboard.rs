//! The customer dashboard: a login form for the tenant's API key, a session cookie, and one
//! server-rendered page listing the tenant's integrations.
//!
//! The cookie holds a random session token (only its hash is stored) and is `HttpOnly` and
//! `SameSite=Strict`; state-changing posts also refuse a foreign `Origin`.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, context};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::integrations::{self, Integration};
use crate::routes::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pb_session";

/// How long a dashboard session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The page templates, compiled into the binary.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Templates, Error> {
        let mut env = Environment::new();
        // Every template is HTML; escape everything that is not marked safe.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        // Ids in links are percent-encoded as one path segment.
        env.add_filter("path", |segment: String| crate::detail::encode(&segment));
        env.add_template("base.html", include_str!("templates/base.html"))?;
        env.add_template("login.html", include_str!("templates/login.html"))?;
        env.add_template("dashboard.html", include_str!("templates/dashboard.html"))?;
        env.add_template(
            "integration.html",
            include_str!("templates/integration.html"),
        )?;
        env.add_template("catalogue.html", include_str!("templates/catalogue.html"))?;
        env.add_template("connect.html", include_str!("templates/connect.html"))?;
        env.add_template("message.html", include_str!("templates/message.html"))?;
        env.add_template("connected.html", include_str!("templates/connected.html"))?;
        env.add_template("header.html", include_str!("templates/header.html"))?;
        env.add_template("settings.html", include_str!("templates/settings.html"))?;
        Ok(Templates { env })
    }

    pub(crate) fn render(&self, name: &str, context: minijinja::Value) -> Result<String, Error> {
        Ok(self.env.get_template(name)?.render(context)?)
    }
}

/// One row of the dashboard table.
#[derive(Serialize)]
struct Row {
    id: String,
    freshness: Vec<integrations::Freshness>,
    warnings: usize,
    connector: String,
    category: String,
    status: &'static str,
    status_label: &'static str,
    status_reason: String,
    action: String,
    last_sync_at: Option<String>,
    records: Vec<(String, u64)>,
}

impl From<Integration> for Row {
    fn from(integration: Integration) -> Row {
        Row {
            id: integration.id,
            freshness: integration.freshness,
            warnings: integration.warnings.len(),
            status_label: status_label(integration.status),
            connector: integration.connector,
            category: integration.category,
            status: integration.status,
            status_reason: integration.status_reason,
            action: integration.action,
            last_sync_at: integration.last_sync_at,
            records: integration.records.into_iter().collect(),
        }
    }
}

pub(crate) fn status_label(status: &str) -> &'static str {
    match status {
        "operational" => "Operational",
        "degraded" => "Degraded",
        "down" => "Down",
        "needs_reconnect" => "Needs reconnect",
        "paused" => "Paused",
        _ => "Unknown",
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    api_key: String,
}

/// An HTML page with headers that keep it out of caches and frames.
pub(crate) fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, axum::response::Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` even on same-site form posts
    // (Fetch standard), which the origin check must refuse. `same-origin` still sends no
    // referrer to other sites.
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// A redirect to a path built from ids; falls back to the overview if it is not a header value.
pub(crate) fn redirect_to(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => redirect("/"),
    }
}

/// The tenant of the request's dashboard session; without one, a redirect to the login form.
pub struct SessionTenant(pub String);

impl axum::extract::FromRequestParts<AppState> for SessionTenant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let Some(token) = session_token(&parts.headers) else {
            return Err(redirect("/login"));
        };
        match state.store.session_tenant(&token).await {
            Ok(Some(tenant_id)) => Ok(SessionTenant(tenant_id)),
            Ok(None) => Err(redirect("/login")),
            Err(error) => Err(message_page(&state.templates, &error)),
        }
    }
}

/// A page that says what went wrong, with the error's HTTP status (404 for another tenant's
/// integration, exactly as for one that does not exist).
pub(crate) fn message_page(templates: &Templates, error: &Error) -> Response {
    let (status, _, message) = error.public_parts();
    match templates.render(
        "message.html",
        context! { title => status.canonical_reason().unwrap_or("Error"), message => message },
    ) {
        Ok(body) => page(status, body),
        Err(_) => (status, message).into_response(),
    }
}

/// The session token from the request's cookies.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Refuses a post whose `Origin` names another site. Browsers send `Origin` on posts; clients
/// that send none are not browsers and cannot be driven by another site.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), Error> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host);
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    match (origin_host, host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(Error::CrossOrigin),
    }
}

fn error_page(state: &AppState, error: &Error) -> Response {
    let (status, _, message) = error.public_parts();
    match state
        .templates
        .render("login.html", context! { error => message })
    {
        Ok(body) => page(status, body),
        Err(_) => (status, message).into_response(),
    }
}

/// `GET /static/dashboard.js`: the little script behind live updates.
pub async fn script() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (CACHE_CONTROL, "no-cache"),
        ],
        include_str!("static/dashboard.js"),
    )
        .into_response()
}

/// `GET /login`.
pub async fn login_form(State(state): State<AppState>) -> Response {
    match state.templates.render("login.html", context! {}) {
        Ok(body) => page(StatusCode::OK, body),
        Err(error) => error.into_response(),
    }
}

/// `POST /login`: checks the key and starts a session.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return error_page(&state, &error);
    }
    let api_key = form.api_key.trim();
    let tenant_id = match state.store.authenticate(api_key).await {
        Ok(Some(tenant_id)) => tenant_id,
        Ok(None) => {
            tracing::info!("denied a dashboard login with an invalid key");
            let body = state.templates.render(
                "login.html",
                context! { error => "That API key is not valid. Check it and try again." },
            );
            return match body {
                Ok(body) => page(StatusCode::UNAUTHORIZED, body),
                Err(error) => error.into_response(),
            };
        }
        Err(error) => return error_page(&state, &error),
    };
    let token = match state
        .store
        .create_session(&tenant_id, api_key, SESSION_LIFETIME)
        .await
    {
        Ok(token) => token,
        Err(error) => return error_page(&state, &error),
    };
    tracing::info!(tenant_id = %tenant_id, "dashboard login");
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if state.is_https() { "; Secure" } else { "" }
    );
    let value = HeaderValue::from_str(&cookie)
        .expect("a base64url token in fixed text is always a valid header value");
    let mut response = redirect("/");
    response.headers_mut().insert(SET_COOKIE, value);
    response
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return error_page(&state, &error);
    }
    if let Some(token) = session_token(&headers)
        && let Err(error) = state.store.delete_session(&token).await
    {
        return error_page(&state, &error);
    }
    let mut response = redirect("/login");
    let cleared = if state.is_https() {
        "pb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
    } else {
        "pb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    };
    response
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static(cleared));
    response
}

/// `GET /`: the tenant's integrations, or a redirect to the login form.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let tenant_id = match session_token(&headers) {
        Some(token) => match state.store.session_tenant(&token).await {
            Ok(Some(tenant_id)) => tenant_id,
            Ok(None) => return redirect("/login"),
            Err(error) => return error_page(&state, &error),
        },
        None => return redirect("/login"),
    };
    // A failing service should not hide the page: show what went wrong in it instead.
    let (status, rows, error) = match integrations::list(&state.mesh, &tenant_id).await {
        Ok(list) => (
            StatusCode::OK,
            list.into_iter().map(Row::from).collect(),
            None,
        ),
        Err(error) => {
            let (status, _, message) = error.public_parts();
            (status, Vec::new(), Some(message))
        }
    };
    let body = state.templates.render(
        "dashboard.html",
        context! { tenant_id => tenant_id, integrations => rows, error => error },
    );
    match body {
        Ok(body) => page(status, body),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; pb_session=abc; x=1"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("abc"));
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn foreign_origins_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(check_same_origin(&headers).is_err());
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(check_same_origin(&headers).is_err());
    }

    #[test]
    fn templates_escape_partner_text() {
        let templates = Templates::new().unwrap();
        let row = Row {
            id: "c1".to_owned(),
            freshness: Vec::new(),
            warnings: 0,
            connector: "<script>alert(1)</script>".to_owned(),
            category: "ats".to_owned(),
            status: "degraded",
            status_label: "Degraded",
            status_reason: "2 records quarantined".to_owned(),
            action: String::new(),
            last_sync_at: None,
            records: vec![("job".to_owned(), 7)],
        };
        let html = templates
            .render(
                "dashboard.html",
                context! { tenant_id => "acme", integrations => vec![row] },
            )
            .unwrap();
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("Degraded"));
        assert!(html.contains("2 records quarantined"));
    }
}
