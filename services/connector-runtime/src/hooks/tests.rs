#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::checkpoint::PagePosition;
use crate::connector::{Connector, SecretSource};
use crate::hmacboard_hooks as hmacboard;
use crate::manifest::load_str;

struct Stamp;

impl SignRequest for Stamp {
    fn sign(
        &self,
        request: &OutgoingRequest<'_>,
        _secret: &Secret,
    ) -> Result<Vec<(String, String)>, String> {
        Ok(vec![("X-Stamp".to_owned(), request.method.to_owned())])
    }
}

struct Pages;

impl NextPage for Pages {
    fn next_page(&self, page: &PageRead<'_>) -> Result<Option<PagePosition>, String> {
        Ok((page.rows > 0).then_some(PagePosition::Offset(page.rows as u64)))
    }
}

struct Unwrap;

impl MapRecord for Unwrap {
    fn map_record(&self, record: Value) -> Result<Value, String> {
        record
            .get("item")
            .cloned()
            .ok_or_else(|| "no item".to_owned())
    }
}

const MANIFEST: &str = r#"manifest_version: 1
name: hooked
display_name: Hooked
category: ats
version: 0.1.0
base_url: "https://partner.example.com"
auth:
  type: bearer
  token: "{{ secret.key }}"
hooks:
  sign_request: test.stamp
streams:
  candidates:
    entity: candidate
    path: /candidates
    hooks:
      map_record: test.unwrap
      next_page: test.pages
"#;

#[test]
fn registered_hooks_are_found_by_name_and_extend_overrides() {
    let hooks = Hooks::default()
        .with_sign_request("test.stamp", Stamp)
        .with_map_record("test.unwrap", Unwrap);
    assert!(hooks.sign_request("test.stamp").is_some());
    assert!(hooks.sign_request("test.unwrap").is_none());
    let unwrap = hooks.map_record("test.unwrap").unwrap();
    assert_eq!(
        unwrap.map_record(json!({"item": {"id": 1}})).unwrap(),
        json!({"id": 1})
    );
    assert_eq!(unwrap.map_record(json!({})).unwrap_err(), "no item");
    let merged = Hooks::builtin().extend(hooks);
    assert!(merged.sign_request(hmacboard::SIGN_REQUEST).is_some());
    assert!(merged.map_record("test.unwrap").is_some());
    assert_eq!(
        format!("{merged:?}"),
        r#"Hooks { sign_request: ["hmacboard.sign", "test.stamp"], map_record: ["test.unwrap"], next_page: [] }"#
    );
}

#[test]
fn unregistered_hooks_are_problems_at_their_lines() {
    let manifest = load_str("m.yaml", MANIFEST).unwrap();
    let problems = Hooks::builtin().problems(&manifest, "m.yaml", MANIFEST);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0].line, 11);
    assert_eq!(
        problems[0].message,
        "sign_request hook \"test.stamp\" is not registered in this binary (registered: \
         hmacboard.sign); register it in the connector's Hooks or fix the name"
    );
    assert_eq!(problems[1].line, 17);
    assert!(
        problems[1].message.starts_with(
            "map_record hook \"test.unwrap\" is not registered in this binary (none is registered)"
        ),
        "{}",
        problems[1].message
    );
    assert_eq!(problems[2].line, 18);
    assert!(
        problems[2]
            .message
            .starts_with("next_page hook \"test.pages\"")
    );
    let registered = Hooks::default()
        .with_sign_request("test.stamp", Stamp)
        .with_map_record("test.unwrap", Unwrap)
        .with_next_page("test.pages", Pages);
    assert!(
        registered
            .problems(&manifest, "m.yaml", MANIFEST)
            .is_empty()
    );
}

#[test]
fn a_connector_naming_an_unregistered_hook_does_not_start() {
    let secret = || SecretSource::Fixed(Secret::api_key("k"));
    let manifest = load_str("m.yaml", MANIFEST).unwrap();
    let Err(error) = Connector::new(manifest.clone(), secret(), false) else {
        panic!("a connector with unregistered hooks started");
    };
    assert!(error.to_string().contains("\"test.stamp\""), "{error}");
    let hooks = Hooks::default()
        .with_sign_request("test.stamp", Stamp)
        .with_map_record("test.unwrap", Unwrap)
        .with_next_page("test.pages", Pages);
    assert!(Connector::with_hooks(manifest, secret(), false, hooks).is_ok());
}

#[test]
fn hmacboard_signs_method_path_query_timestamp_and_body() {
    let url = reqwest::Url::parse("https://api.hmacboard.example/candidates?limit=2").unwrap();
    let body = br#"{"a":1}"#;
    let request = OutgoingRequest {
        method: "POST",
        url: &url,
        body: Some(body),
    };
    let secret = Secret::basic("acct-1", "signing-secret");
    let headers = hmacboard::Signer.sign(&request, &secret).unwrap();
    assert_eq!(headers[0].0, "X-Hmacboard-Timestamp");
    let timestamp = &headers[0].1;
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() <= 5);
    // Computed here from the scheme's description, not with the hook's own function.
    let text = format!(
        "POST\n/candidates?limit=2\n{timestamp}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"signing-secret").unwrap();
    mac.update(text.as_bytes());
    assert_eq!(
        headers[1],
        (
            "X-Hmacboard-Signature".to_owned(),
            hex::encode(mac.finalize().into_bytes())
        )
    );
    let no_secret = hmacboard::Signer.sign(&request, &Secret::basic("acct-1", ""));
    assert!(no_secret.unwrap_err().contains("signing secret"));
}
