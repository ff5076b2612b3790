//! The connect form, generated from a connector's manifest: one field per property of its
//! settings JSON Schema (strings, numbers, booleans; `enum` becomes a choice), then the fields
//! its credential kind needs. Posted values become the settings JSON and the secret.

use std::collections::HashMap;

use plugboard_proto::credentials::v1::{
    ApiKey, Basic, ClientCertificate, OAuth2Client, Secret, secret,
};
use plugboard_proto::registry::v1::ConnectorManifest;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;

/// Form field names of settings are prefixed so they never collide with credential fields.
pub const SETTING_PREFIX: &str = "setting.";
pub const CREDENTIAL_PREFIX: &str = "credential.";

/// One input of the form.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Field {
    /// The form field name (with its prefix).
    pub name: String,
    pub label: String,
    pub help: String,
    /// HTML input type: text, url, number, password, checkbox, `textarea` or `select`.
    pub input: &'static str,
    pub required: bool,
    pub default: String,
    pub options: Vec<String>,
}

/// The settings fields of a JSON Schema (its top-level `properties`), in schema order.
pub fn settings_fields(schema_json: &str) -> Result<Vec<Field>, Error> {
    if schema_json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let schema: Value = serde_json::from_str(schema_json).map_err(|e| {
        Error::InvalidForm(format!("the connector's settings schema is not JSON: {e}"))
    })?;
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Ok(Vec::new());
    };
    Ok(properties
        .iter()
        .map(|(name, property)| {
            let options: Vec<String> = property["enum"]
                .as_array()
                .map(|values| values.iter().map(text_of).collect())
                .unwrap_or_default();
            let input = if !options.is_empty() {
                "select"
            } else {
                match (property["type"].as_str(), property["format"].as_str()) {
                    (Some("boolean"), _) => "checkbox",
                    (Some("integer" | "number"), _) => "number",
                    (_, Some("uri")) => "url",
                    _ => "text",
                }
            };
            Field {
                name: format!("{SETTING_PREFIX}{name}"),
                label: property["title"]
                    .as_str()
                    .map_or_else(|| humanise(name), str::to_owned),
                help: property["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                input,
                required: required.contains(&name.as_str()),
                default: property.get("default").map(text_of).unwrap_or_default(),
                options,
            }
        })
        .collect())
}

/// The fields a credential kind needs; an unknown kind is refused rather than guessed.
pub fn credential_fields(kind: &str) -> Result<Vec<Field>, Error> {
    let field = |name: &str, label: &str, input: &'static str, required: bool, help: &str| Field {
        name: format!("{CREDENTIAL_PREFIX}{name}"),
        label: label.to_owned(),
        help: help.to_owned(),
        input,
        required,
        default: String::new(),
        options: Vec::new(),
    };
    match kind {
        "api_key" => Ok(vec![field("key", "API key", "password", true, "")]),
        "basic" => Ok(vec![
            field("username", "Username", "text", true, ""),
            field("password", "Password", "password", true, ""),
        ]),
        "oauth2_client" => Ok(vec![
            field("client_id", "Client id", "text", true, ""),
            field("client_secret", "Client secret", "password", true, ""),
            field(
                "token_url",
                "Token URL",
                "url",
                true,
                "Where the partner issues access tokens",
            ),
            field(
                "username",
                "API username",
                "text",
                false,
                "For partners that log a user in with the client",
            ),
            field("password", "API password", "password", false, ""),
            field(
                "scopes",
                "Scopes",
                "text",
                false,
                "Separated by spaces; empty for the partner's default",
            ),
        ]),
        "client_certificate" => Ok(vec![
            field(
                "certificate_chain_pem",
                "Client certificate (PEM)",
                "textarea",
                true,
                "The certificate chain, leaf first",
            ),
            field(
                "private_key_pem",
                "Private key (PEM)",
                "textarea",
                true,
                "The certificate's private key; stored encrypted",
            ),
            field(
                "server_ca_pem",
                "Partner CA (PEM)",
                "textarea",
                false,
                "Only when the partner's server certificate comes from a private CA",
            ),
        ]),
        other => Err(Error::InvalidForm(format!(
            "connecting a {other:?} credential from the dashboard is not supported yet"
        ))),
    }
}

/// The OAuth client of a connector connected through authorization code: the customer's app
/// at the partner. The customer then consents at the partner; no password is typed here.
pub fn oauth_client_fields(with_token_url: bool) -> Vec<Field> {
    let field = |name: &str, label: &str, input: &'static str, help: &str| Field {
        name: format!("{CREDENTIAL_PREFIX}{name}"),
        label: label.to_owned(),
        help: help.to_owned(),
        input,
        required: true,
        default: String::new(),
        options: Vec::new(),
    };
    let mut fields = vec![
        field(
            "client_id",
            "Client id",
            "text",
            "Of your app at the partner",
        ),
        field("client_secret", "Client secret", "password", ""),
    ];
    if with_token_url {
        fields.push(field(
            "token_url",
            "Token URL",
            "url",
            "Where the partner issues access tokens",
        ));
    }
    fields
}

/// The settings JSON from posted values, typed per the schema's fields.
pub fn settings_json(fields: &[Field], posted: &HashMap<String, String>) -> Result<String, Error> {
    let mut settings = Map::new();
    for field in fields {
        let raw = posted
            .get(&field.name)
            .map(|v| v.trim())
            .unwrap_or_default();
        let key = field.name.trim_start_matches(SETTING_PREFIX).to_owned();
        let value = match field.input {
            "checkbox" => Value::Bool(!raw.is_empty()),
            _ if raw.is_empty() && field.required => {
                return Err(Error::InvalidForm(format!("{} is required", field.label)));
            }
            _ if raw.is_empty() => continue,
            "number" => serde_json::from_str::<serde_json::Number>(raw)
                .map(Value::Number)
                .map_err(|_| Error::InvalidForm(format!("{} must be a number", field.label)))?,
            "url" if !(raw.starts_with("https://") || raw.starts_with("http://")) => {
                return Err(Error::InvalidForm(format!(
                    "{} must be an http or https URL",
                    field.label
                )));
            }
            "select" if !field.options.iter().any(|option| option == raw) => {
                return Err(Error::InvalidForm(format!(
                    "{} must be one of the choices",
                    field.label
                )));
            }
            _ => Value::String(raw.to_owned()),
        };
        settings.insert(key, value);
    }
    Ok(Value::Object(settings).to_string())
}

/// The secret from posted values for a credential kind.
pub fn secret(kind: &str, posted: &HashMap<String, String>) -> Result<Secret, Error> {
    let fields = credential_fields(kind)?;
    let mut values = HashMap::new();
    for field in &fields {
        let value = posted
            .get(&field.name)
            .map(|v| v.trim())
            .unwrap_or_default();
        if field.required && value.is_empty() {
            return Err(Error::InvalidForm(format!("{} is required", field.label)));
        }
        values.insert(
            field.name.trim_start_matches(CREDENTIAL_PREFIX),
            value.to_owned(),
        );
    }
    let mut take = |name: &str| values.remove(name).unwrap_or_default();
    let kind = match kind {
        "api_key" => secret::Kind::ApiKey(ApiKey { key: take("key") }),
        "basic" => secret::Kind::Basic(Basic {
            username: take("username"),
            password: take("password"),
        }),
        "client_certificate" => secret::Kind::ClientCertificate(ClientCertificate {
            certificate_chain_pem: take("certificate_chain_pem"),
            private_key_pem: take("private_key_pem"),
            server_ca_pem: take("server_ca_pem"),
        }),
        _ => secret::Kind::Oauth2Client(OAuth2Client {
            client_id: take("client_id"),
            client_secret: take("client_secret"),
            token_url: take("token_url"),
            scopes: take("scopes")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            username: take("username"),
            password: take("password"),
            token_parameters: Default::default(),
            client_secret_in_body: false,
            client_certificate: None,
        }),
    };
    Ok(Secret { kind: Some(kind) })
}

/// What the manifest says about a secret the form cannot: how its OAuth2 client authenticates.
pub fn for_manifest(mut secret: Secret, manifest: &ConnectorManifest) -> Secret {
    if let Some(secret::Kind::Oauth2Client(client)) = &mut secret.kind {
        client.client_secret_in_body = manifest.client_secret_in_body;
    }
    secret
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// "login_url" → "Login url".
fn humanise(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"object","required":["auth_url"],"properties":{
        "auth_url":{"type":"string","format":"uri","description":"OAuth base"},
        "page_size":{"type":"integer","default":100},
        "region":{"type":"string","enum":["eu","us"]},
        "sandbox":{"type":"boolean","title":"Use the sandbox"}}}"#;

    fn posted(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_schema_becomes_typed_fields() {
        let fields = settings_fields(SCHEMA).unwrap();
        let by = |name: &str| fields.iter().find(|f| f.name == name).unwrap();
        assert_eq!(by("setting.auth_url").input, "url");
        assert!(by("setting.auth_url").required);
        assert_eq!(by("setting.auth_url").label, "Auth url");
        assert_eq!(by("setting.page_size").input, "number");
        assert_eq!(by("setting.page_size").default, "100");
        assert_eq!(by("setting.region").options, ["eu", "us"]);
        assert_eq!(by("setting.sandbox").label, "Use the sandbox");
        assert!(settings_fields("not json").is_err());
    }

    #[test]
    fn posted_values_become_settings_json_or_a_named_error() {
        let fields = settings_fields(SCHEMA).unwrap();
        let json = settings_json(
            &fields,
            &posted(&[
                ("setting.auth_url", "https://auth.example"),
                ("setting.page_size", "50"),
                ("setting.region", "eu"),
            ]),
        )
        .unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["auth_url"], "https://auth.example");
        assert_eq!(value["page_size"], 50);
        assert_eq!(value["sandbox"], false);

        let missing = settings_json(&fields, &posted(&[])).unwrap_err();
        assert_eq!(missing.to_string(), "Auth url is required");
        let bad_url = settings_json(&fields, &posted(&[("setting.auth_url", "file:///etc")]));
        assert!(bad_url.unwrap_err().to_string().contains("http or https"));
        let bad_choice = settings_json(
            &fields,
            &posted(&[
                ("setting.auth_url", "https://a"),
                ("setting.region", "mars"),
            ]),
        );
        assert!(bad_choice.is_err());
    }

    #[test]
    fn credential_kinds_make_their_secrets() {
        let secret_of = secret(
            "oauth2_client",
            &posted(&[
                ("credential.client_id", "id"),
                ("credential.client_secret", "s3cret"),
                ("credential.token_url", "https://auth/token"),
                ("credential.scopes", "read write"),
            ]),
        )
        .unwrap();
        let Some(secret::Kind::Oauth2Client(client)) = secret_of.kind else {
            panic!("expected an oauth2 client");
        };
        assert_eq!(client.client_secret, "s3cret");
        assert_eq!(client.scopes, ["read", "write"]);
        assert!(secret("api_key", &posted(&[])).is_err());
        assert!(credential_fields("certificate").is_err());
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let certificate = secret(
            "client_certificate",
            &posted(&[
                ("credential.certificate_chain_pem", pem),
                ("credential.private_key_pem", "key"),
            ]),
        )
        .unwrap();
        assert!(matches!(
            certificate.kind,
            Some(secret::Kind::ClientCertificate(ref c)) if c.certificate_chain_pem == pem
        ));
        let oauth: Vec<String> = oauth_client_fields(false)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(oauth, ["credential.client_id", "credential.client_secret"]);
    }
}
