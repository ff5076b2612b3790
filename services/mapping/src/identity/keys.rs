//! What a record is matched on: its normalised e-mail, its E.164 phone and the ids it carries
//! from other systems. Pure, so the rules are tested on their own.

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Address, CanonicalRecord, ExternalReference};

/// The entities that are people, and so take part in identity.
pub const PERSON_ENTITIES: &[&str] = &["candidate", "worker", "parsed_resume"];

/// A record of sync's store, as identity knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub connection_id: String,
    pub entity: String,
    pub external_id: String,
}

/// Another system's id a record carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub connector: String,
    pub entity: String,
    pub external_id: String,
}

/// Everything identity reads from one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKeys {
    pub email: String,
    pub phone: String,
    pub references: Vec<Reference>,
    pub display_name: String,
}

/// The keys of `record`, from `connector`; `None` for records that are not people.
pub fn keys_of(record: &CanonicalRecord, connector: &str) -> Option<RecordKeys> {
    let own_candidate = |candidate_external_id: &str| {
        (!candidate_external_id.is_empty()).then(|| Reference {
            connector: connector.to_owned(),
            entity: "candidate".to_owned(),
            external_id: candidate_external_id.to_owned(),
        })
    };
    let (first, last, email, phone, address, listed, implied) = match record.body.as_ref()? {
        Body::Candidate(candidate) => (
            &candidate.first_name,
            &candidate.last_name,
            &candidate.email,
            &candidate.phone,
            candidate.address.as_ref(),
            &candidate.references,
            None,
        ),
        Body::Worker(worker) => (
            &worker.first_name,
            &worker.last_name,
            &worker.email,
            &worker.phone,
            worker.address.as_ref(),
            &worker.references,
            own_candidate(&worker.candidate_external_id),
        ),
        Body::ParsedResume(resume) => (
            &resume.first_name,
            &resume.last_name,
            &resume.email,
            &resume.phone,
            resume.address.as_ref(),
            &resume.references,
            None,
        ),
        _ => return None,
    };
    let mut references: Vec<Reference> =
        listed.iter().filter_map(reference).chain(implied).collect();
    references.sort();
    references.dedup();
    Some(RecordKeys {
        email: normalise_email(email).unwrap_or_default(),
        phone: normalise_phone(phone, address).unwrap_or_default(),
        references,
        display_name: format!("{first} {last}").trim().to_owned(),
    })
}

fn reference(listed: &ExternalReference) -> Option<Reference> {
    if listed.connector.is_empty() || listed.external_id.is_empty() {
        return None;
    }
    let entity = if listed.entity.is_empty() {
        "candidate"
    } else {
        &listed.entity
    };
    Some(Reference {
        connector: listed.connector.clone(),
        entity: entity.to_owned(),
        external_id: listed.external_id.clone(),
    })
}

/// `Ada.Lovelace+work@Example.COM ` becomes `ada.lovelace@example.com`: trimmed, lower-cased,
/// the `+tag` of the local part removed. `None` for text that is not one address.
pub fn normalise_email(text: &str) -> Option<String> {
    let lowered = text.trim().to_lowercase();
    let (local, domain) = lowered.split_once('@')?;
    let local = local.split_once('+').map_or(local, |(base, _tag)| base);
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !lowered.contains(char::is_whitespace);
    plausible.then(|| format!("{local}@{domain}"))
}

/// The number in E.164 (`+17913961139`). A number with a `+` or `00` prefix is read as
/// international; one without is read in the country of `address`, and is not used when the
/// record has no country. Numbers that are not valid there are not used either: `555-0100`
/// must not join everyone who typed it.
pub fn normalise_phone(text: &str, address: Option<&Address>) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let international = text.starts_with('+') || text.starts_with("00");
    let region = address
        .map(|address| address.country_code.trim().to_uppercase())
        .filter(|code| !code.is_empty())
        .and_then(|code| code.parse::<phonenumber::country::Id>().ok());
    if !international && region.is_none() {
        return None;
    }
    let text = match text.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => text.to_owned(),
    };
    let number = phonenumber::parse(region, &text).ok()?;
    phonenumber::is_valid(&number)
        .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use plugboard_proto::common::v1::{Candidate, Worker};

    use super::*;

    fn at(country: &str) -> Option<Address> {
        Some(Address {
            country_code: country.to_owned(),
            ..Address::default()
        })
    }

    #[test]
    fn emails_are_trimmed_lowered_and_lose_their_tag() {
        assert_eq!(
            normalise_email(" Chloé.Garcia0+ats@Example-Mail.COM "),
            Some("chloé.garcia0@example-mail.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "a b@x.com",
            "a@b@c.d",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn phones_become_e164_in_the_records_country() {
        let us = at("US");
        assert_eq!(
            normalise_phone("+1 (791) 396-1139", None),
            None,
            "791 is no US area code: not a valid number"
        );
        assert_eq!(
            normalise_phone("(617) 555-0123", us.as_ref()),
            Some("+16175550123".to_owned())
        );
        assert_eq!(
            normalise_phone("+1 617-555-0123", None),
            Some("+16175550123".to_owned())
        );
        let gb = at("gb");
        assert_eq!(
            normalise_phone("020 7946 0958", gb.as_ref()),
            Some("+442079460958".to_owned())
        );
        assert_eq!(
            normalise_phone("0044 20 7946 0958", us.as_ref()),
            Some("+442079460958".to_owned())
        );
        // A national number with no country to read it in is not used.
        assert_eq!(normalise_phone("(617) 555-0123", None), None);
        assert_eq!(normalise_phone("555-555-5555", us.as_ref()), None);
        assert_eq!(normalise_phone("call me", us.as_ref()), None);
    }

    #[test]
    fn workers_refer_to_their_candidate_and_other_entities_are_not_people() {
        let worker = CanonicalRecord {
            entity: "worker".to_owned(),
            body: Some(Body::Worker(Worker {
                first_name: "Ada".to_owned(),
                candidate_external_id: "77".to_owned(),
                references: vec![ExternalReference {
                    connector: "bullhorn".to_owned(),
                    entity: String::new(),
                    external_id: "9".to_owned(),
                }],
                ..Worker::default()
            })),
            ..CanonicalRecord::default()
        };
        let keys = keys_of(&worker, "fieldglass").unwrap();
        let ids: Vec<(&str, &str)> = keys
            .references
            .iter()
            .map(|reference| (reference.connector.as_str(), reference.external_id.as_str()))
            .collect();
        assert_eq!(ids, [("bullhorn", "9"), ("fieldglass", "77")]);
        assert_eq!(keys.display_name, "Ada");

        let candidate = CanonicalRecord {
            body: Some(Body::Candidate(Candidate {
                email: "ADA@example.com".to_owned(),
                ..Candidate::default()
            })),
            ..CanonicalRecord::default()
        };
        assert_eq!(keys_of(&candidate, "x").unwrap().email, "ada@example.com");
        let job = CanonicalRecord {
            body: Some(Body::Job(Default::default())),
            ..CanonicalRecord::default()
        };
        assert_eq!(keys_of(&job, "x"), None);
    }
}
