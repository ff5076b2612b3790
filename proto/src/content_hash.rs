//! The content hash of a canonical record: how mapping writes it and how sync compares it.
//!
//! A hash is `scheme:hex digits`, so a record stored under one scheme is never taken as changed
//! because mapping now computes another: hashes of different schemes say nothing about a
//! change, and sync compares such records by content (`plugboard_sync::rehash`). The schemes:
//!
//! - none (64 hex digits alone): SHA-256 of the entity, the body's JSON and the custom fields'
//!   JSON, one per line; what mapping wrote before the schemes;
//! - [`PROTOBUF_SCHEME`]: SHA-256 of the entity, the body's protobuf encoding and the custom
//!   fields sorted by name. Canonical bodies have no map fields (prost writes those in hash map
//!   order), so equal bodies encode to equal bytes; a test keeps it so.

/// The scheme mapping hashes records with: the body's protobuf encoding.
pub const PROTOBUF_SCHEME: &str = "pb";

/// The scheme of `hash`: the text before its `:`, empty for a hash without one.
pub fn scheme_of(hash: &str) -> &str {
    hash.split_once(':').map_or("", |(scheme, _)| scheme)
}

/// True when `left` and `right` were computed the same way, so that comparing them says
/// whether the content changed.
pub fn same_scheme(left: &str, right: &str) -> bool {
    scheme_of(left) == scheme_of(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_from_the_prefix() {
        let old = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
        let new = "pb:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
        assert_eq!(scheme_of(old), "");
        assert_eq!(scheme_of(new), PROTOBUF_SCHEME);
        assert!(!same_scheme(old, new));
        assert!(same_scheme(new, "pb:00"));
        assert!(same_scheme(old, ""));
    }

    /// The protobuf scheme relies on bodies without map fields: the only map of
    /// `canonical.proto` is `CanonicalRecord.custom_fields`, which mapping hashes sorted.
    #[test]
    fn canonical_bodies_have_no_map_fields() {
        let proto = include_str!("../plugboard/common/v1/canonical.proto");
        let mut message = "";
        let mut maps = Vec::new();
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("message ") {
                message = rest.trim_end_matches('{').trim();
            }
            if line.starts_with("map<") || line.contains(" map<") {
                maps.push((message, line));
            }
        }
        assert!(!maps.is_empty(), "the scan found custom_fields");
        for (message, line) in maps {
            assert_eq!(
                message, "CanonicalRecord",
                "{line}: a map field in a canonical body makes its protobuf encoding, and so \
                 its content hash, depend on hash map order; sort it or use a repeated field"
            );
        }
    }
}
