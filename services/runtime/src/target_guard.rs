//! The target guard: keeps calls to tenant-supplied URLs off internal networks.
//!
//! Connection settings, login responses (a session's base URL), paginators (a next-page URL)
//! and OAuth2 token endpoints all name URLs a service will call with secrets attached, so each
//! one must be http(s) and resolve only to public addresses, unless the process runs with
//! `PLUGBOARD_ALLOW_PRIVATE_TARGETS=true` (dev mode and tests, whose sandboxes are local).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("target {url} is not allowed: {reason}")]
    Refused { url: String, reason: String },
    /// The host could not be resolved (retryable: DNS may recover).
    #[error("{0}")]
    Unresolvable(String),
}

/// Accepts `url` when it is http(s) and every address its host resolves to is public.
pub async fn check_target(url: &str, allow_private: bool) -> Result<Url, GuardError> {
    let refuse = |reason: &str| GuardError::Refused {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url).map_err(|e| refuse(&format!("not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("only http and https URLs are allowed"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(refuse("the URL has no host"));
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("the URL must not carry credentials"));
    }
    if allow_private {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        // TODO(#3): pin the resolved addresses in the HTTP client, so that a DNS answer that
        // changes between this check and the request (rebinding) cannot reach a private host.
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| GuardError::Unresolvable(format!("cannot resolve {host}: {e}")))?
            .map(|socket| socket.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(GuardError::Unresolvable(format!(
            "{host} resolves to nothing"
        )));
    }
    if let Some(ip) = addresses.iter().find(|ip| !is_public(**ip)) {
        return Err(refuse(&format!(
            "{host} resolves to {ip}, a loopback, private, link-local or unspecified address"
        )));
    }
    Ok(parsed)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b); // 100.64.0.0/10, carrier-grade NAT
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || shared)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7
    let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str) -> String {
        match check_target(url, false).await {
            Err(GuardError::Refused { reason, .. }) => reason,
            other => panic!("{url} should be refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn guard_refuses_internal_targets_and_odd_schemes() {
        for url in [
            "http://127.0.0.1:9101",
            "http://10.1.2.3/",
            "https://192.168.0.10",
            "http://172.16.5.4",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0:80",
            "http://100.64.0.1",
            "http://[::1]:9101",
            "http://[fd00::1]",
            "http://[fe80::1]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost:9101",
        ] {
            assert!(refused(url).await.contains("address"), "{url}");
        }
        assert!(refused("ftp://example.com").await.contains("http"));
        assert!(refused("file:///etc/passwd").await.contains("http"));
        assert!(refused("not a url").await.contains("valid URL"));
        assert!(
            refused("https://user:pw@8.8.8.8")
                .await
                .contains("credentials")
        );
    }

    #[tokio::test]
    async fn guard_accepts_public_addresses_and_private_ones_when_allowed() {
        assert!(check_target("https://8.8.8.8/oauth", false).await.is_ok());
        assert!(
            check_target("http://[2001:4860:4860::8888]/", false)
                .await
                .is_ok()
        );
        assert!(check_target("http://127.0.0.1:9101", true).await.is_ok());
        assert!(check_target("ftp://127.0.0.1", true).await.is_err());
    }
}
