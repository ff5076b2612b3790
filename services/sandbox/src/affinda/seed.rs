//! Documents built from the example values in Affinda's spec (`ResumeData`), varied by a
//! seeded generator so every document is different and every run the same.

use std::path::Path;

use serde_json::{Value, json};

use super::Error;

/// Example values of `ResumeData`'s properties, from the spec.
#[derive(Debug, Clone)]
pub struct Examples {
    pub phone_numbers: Vec<String>,
    pub emails: Vec<String>,
    pub websites: Vec<String>,
    pub profession: String,
    pub languages: Vec<String>,
    pub certifications: Vec<String>,
}

impl Examples {
    pub fn load(spec: &Path) -> Result<Examples, Error> {
        let fail = |reason: String| Error::Spec {
            path: spec.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(spec).map_err(|e| fail(e.to_string()))?;
        let spec: Value = serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let properties = spec
            .pointer("/components/schemas/ResumeData/properties")
            .ok_or_else(|| fail("no components.schemas.ResumeData".to_owned()))?;
        let strings = |name: &str| -> Vec<String> {
            properties[name]["example"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let examples = Examples {
            phone_numbers: strings("phoneNumbers"),
            emails: strings("emails"),
            websites: strings("websites"),
            profession: properties["profession"]["example"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            languages: strings("languages"),
            certifications: strings("certifications"),
        };
        if examples.emails.is_empty() || examples.phone_numbers.is_empty() {
            return Err(fail("ResumeData has no email or phone examples".to_owned()));
        }
        Ok(examples)
    }
}

const FIRST: [&str; 8] = [
    "Tim", "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances",
];
const LAST: [&str; 8] = [
    "Smith", "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen",
];
const SKILLS: [&str; 6] = [
    "Python",
    "Nursing",
    "Welding",
    "Forklift",
    "SQL",
    "Customer Service",
];
const EMPLOYERS: [&str; 4] = ["Acme Staffing", "Globex", "Initech", "Umbrella Health"];

/// A small deterministic generator (xorshift), so the sandbox needs no random-number crate.
pub struct Generator(u64);

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator(seed.max(1))
    }

    pub fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below.max(1) as u64) as usize
    }
}

/// The `ResumeData` of one person.
pub fn resume_data(
    examples: &Examples,
    first: &str,
    last: &str,
    email: &str,
    skills: &[String],
    generator: &mut Generator,
) -> Value {
    let employer = EMPLOYERS[generator.next(EMPLOYERS.len())];
    let phone = &examples.phone_numbers[generator.next(examples.phone_numbers.len())];
    json!({
        "name": {"raw": format!("{first} {last}"), "first": first, "last": last},
        "emails": [email],
        "phoneNumbers": [phone],
        "websites": examples.websites,
        "profession": examples.profession,
        "languages": examples.languages,
        "certifications": examples.certifications,
        "summary": format!("{} with {} years at {employer}.", examples.profession, 2 + generator.next(10)),
        "skills": skills.iter().map(|name| json!({"name": name, "type": "hard_skill"})).collect::<Vec<_>>(),
        "workExperience": [{
            "jobTitle": examples.profession,
            "organization": employer,
            "dates": {"startDate": "2019-02-01", "endDate": null, "isCurrent": true},
        }],
        "education": [{
            "organization": "Virginia Tech",
            "accreditation": {"education": "Bachelor of Science", "inputStr": "BSc Computer Science"},
            "dates": {"completionDate": "2014-06-01"},
        }],
    })
}

/// The seeded people: (first, last, email, skills).
pub fn people(
    examples: &Examples,
    count: usize,
    seed: u64,
) -> Vec<(String, String, String, Vec<String>)> {
    let mut generator = Generator::new(seed);
    let domain = examples.emails[0]
        .split('@')
        .nth(1)
        .unwrap_or("example.com")
        .to_owned();
    (0..count)
        .map(|index| {
            let first = FIRST[generator.next(FIRST.len())];
            let last = LAST[generator.next(LAST.len())];
            let email = format!(
                "{}.{}{index}@{domain}",
                first.to_lowercase(),
                last.to_lowercase()
            );
            let skills = (0..2)
                .map(|_| SKILLS[generator.next(SKILLS.len())].to_owned())
                .collect();
            (first.to_owned(), last.to_owned(), email, skills)
        })
        .collect()
}
