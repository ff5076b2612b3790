use serde_json::json;

use super::*;
use crate::policy::{ConflictPolicy, EntityPolicy};

fn push(state: PushState, origin: Origin, written: serde_json::Value) -> Push {
    Push {
        push_id: format!("push-{}", uuid::Uuid::now_v7()),
        tenant_id: "t".into(),
        connection_id: "c".into(),
        idempotency_key: "k".into(),
        entity: "candidate".into(),
        request_json: "{}".into(),
        record_json: written.to_string(),
        skipped_fields: Vec::new(),
        external_id: "7".into(),
        is_create: false,
        origin,
        state,
        attempts: 1,
        maybe_sent: false,
        next_attempt_at: "2026-01-01T00:00:00.000Z".into(),
        error: None,
        error_reason: None,
        answer_fields: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
        delivered_at: None,
        echo_seen_at: None,
    }
}

fn values(body: serde_json::Value) -> FieldValues {
    fields::of_body(&body)
}

fn policy(platform: &[&str], partner: &[&str]) -> EntityPolicy {
    EntityPolicy {
        entity: "candidate".into(),
        platform_fields: platform.iter().map(|f| (*f).to_owned()).collect(),
        partner_fields: partner.iter().map(|f| (*f).to_owned()).collect(),
        conflict_policy: ConflictPolicy::HoldForReview,
    }
}

#[test]
fn our_update_coming_back_is_an_echo_and_is_seen() {
    let stored = values(json!({"first_name": "Ada", "current_title": "Clerk", "updated_at": "1"}));
    let incoming =
        values(json!({"first_name": "Ada", "current_title": "Analyst", "updated_at": "2"}));
    let ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"current_title": "Analyst"}),
    );
    let review = review(Some(&stored), &incoming, &[&ours], &policy(&[], &[]));
    assert!(review.echo, "{review:?}");
    assert!(review.conflicts.is_empty());
    assert_eq!(review.echoes_seen, vec![ours.push_id.clone()]);
}

#[test]
fn our_create_coming_back_is_an_echo_whatever_the_partner_added() {
    let incoming = values(json!({
        "first_name": "Ada", "email": "ada@example.com", "source": "Referral",
        "created_at": "3", "updated_at": "3",
    }));
    let ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"first_name": "Ada", "email": "ada@example.com"}),
    );
    let review = review(None, &incoming, &[&ours], &policy(&["email"], &[]));
    assert!(review.echo, "{review:?}");
}

#[test]
fn a_value_the_partner_answered_with_counts_as_ours() {
    let stored = values(json!({"email": "old@example.com"}));
    let incoming = values(json!({"email": "ada@example.com"}));
    let mut ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"email": "Ada@Example.com"}),
    );
    ours.answer_fields = Some(values(json!({"email": "ada@example.com"})));
    let review = review(Some(&stored), &incoming, &[&ours], &policy(&[], &[]));
    assert!(review.echo, "{review:?}");
}

#[test]
fn a_partner_edit_to_a_platform_field_conflicts_even_without_a_push() {
    let stored = values(json!({"first_name": "Ada", "email": "ada@example.com"}));
    let incoming = values(json!({"first_name": "Ada", "email": "spam@example.com"}));
    let review = review(Some(&stored), &incoming, &[], &policy(&["email"], &[]));
    assert!(!review.echo);
    assert_eq!(review.conflicts.len(), 1);
    let conflict = &review.conflicts[0];
    assert_eq!(conflict.against, None);
    assert_eq!(conflict.fields[0].field, "email");
    assert_eq!(
        conflict.fields[0].platform_value,
        Some(json!("ada@example.com"))
    );
    assert_eq!(
        conflict.fields[0].partner_value,
        Some(json!("spam@example.com"))
    );
}

#[test]
fn shared_fields_conflict_only_with_an_open_push_of_another_value() {
    let stored = values(json!({"phone": "1", "last_name": "Lovelace"}));
    let incoming = values(json!({"phone": "2", "last_name": "Byron"}));
    let none = review(Some(&stored), &incoming, &[], &policy(&[], &[]));
    assert!(none.conflicts.is_empty());
    assert_eq!(none.partner_changes, ["last_name", "phone"]);

    let queued = push(PushState::Pending, Origin::Caller, json!({"phone": "3"}));
    let against = review(Some(&stored), &incoming, &[&queued], &policy(&[], &[]));
    assert_eq!(against.partner_changes, ["last_name"]);
    assert_eq!(against.conflicts.len(), 1);
    let conflict = &against.conflicts[0];
    assert_eq!(conflict.fields[0].platform_value, Some(json!("3")));
    assert_eq!(
        conflict.against.as_ref().map(|a| a.state),
        Some(PushState::Pending)
    );
    // A queued push is not back yet, so nothing is seen.
    assert!(against.echoes_seen.is_empty());
}

#[test]
fn partner_owned_fields_never_conflict() {
    let stored = values(json!({"owner_name": "Sam"}));
    let incoming = values(json!({"owner_name": "Kim"}));
    let ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"owner_name": "Jo"}),
    );
    let review = review(
        Some(&stored),
        &incoming,
        &[&ours],
        &policy(&[], &["owner_name"]),
    );
    assert!(review.conflicts.is_empty());
    assert_eq!(review.partner_changes, ["owner_name"]);
    assert!(!review.echo);
}

#[test]
fn an_echo_with_a_partner_edit_beside_it_is_a_change() {
    let stored = values(json!({"current_title": "Clerk", "phone": "1"}));
    let incoming = values(json!({"current_title": "Analyst", "phone": "2"}));
    let ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"current_title": "Analyst"}),
    );
    let review = review(Some(&stored), &incoming, &[&ours], &policy(&[], &[]));
    assert!(!review.echo);
    assert_eq!(review.partner_changes, ["phone"]);
    assert_eq!(review.echoes_seen, vec![ours.push_id.clone()]);
}

#[test]
fn the_latest_push_of_a_field_speaks_for_the_platform() {
    let stored = values(json!({"current_title": "Clerk"}));
    let incoming = values(json!({"current_title": "Analyst"}));
    let older = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"current_title": "Analyst"}),
    );
    let newer = push(
        PushState::Pending,
        Origin::Caller,
        json!({"current_title": "Director"}),
    );
    let review = review(
        Some(&stored),
        &incoming,
        &[&older, &newer],
        &policy(&[], &[]),
    );
    assert_eq!(review.conflicts.len(), 1);
    assert_eq!(
        review.conflicts[0].fields[0].platform_value,
        Some(json!("Director"))
    );
    // The older push is back in full: its values are the partner's now.
    assert_eq!(review.echoes_seen, vec![older.push_id.clone()]);
}

#[test]
fn only_bookkeeping_changed_after_our_write_is_an_echo() {
    let stored = values(json!({"first_name": "Ada", "updated_at": "1"}));
    let incoming = values(json!({"first_name": "Ada", "updated_at": "2"}));
    let ours = push(
        PushState::Delivered,
        Origin::Caller,
        json!({"first_name": "Ada"}),
    );
    assert!(review(Some(&stored), &incoming, &[&ours], &policy(&[], &[])).echo);
    assert!(!review(Some(&stored), &incoming, &[], &policy(&[], &[])).echo);
}
