//! Partner wire formats beside JSON: XML (read into JSON, written from it) and CSV flat files
//! (read), so a stream's record selector, primary key and cursor work the same on all three.
//!
//! XML reads as JSON this way: the document is `{"<root>": …}`; an element with neither
//! attributes nor child elements is its text; any other element is an object whose `@name`
//! keys are its attributes, whose other keys are its child elements by local name (namespace
//! prefixes dropped, so `soap:Body` is `Body`), a repeated child becoming an array, and whose
//! `#text` is its text. Values stay strings: mapping specs convert them. Writing reverses it.
//! CSV reads as an array of objects keyed by the header row.

use std::collections::BTreeMap;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{Map, Value};

/// An element being read: attributes and children in document order, and its raw text.
#[derive(Default)]
struct Element {
    name: String,
    fields: Vec<(String, Value)>,
    text: String,
}

impl Element {
    fn add(&mut self, name: String, value: Value) {
        self.fields.push((name, value));
    }

    fn into_value(self) -> Result<Value, String> {
        let text = quick_xml::escape::unescape(self.text.trim())
            .map_err(|e| format!("element {}: {e}", self.name))?
            .into_owned();
        if self.fields.is_empty() {
            return Ok(Value::String(text));
        }
        let mut object = Map::new();
        for (name, value) in self.fields {
            match object.get_mut(&name) {
                None => {
                    object.insert(name, value);
                }
                Some(Value::Array(items)) if !name.starts_with('@') => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
            }
        }
        if !text.is_empty() {
            object.insert("#text".to_owned(), Value::String(text));
        }
        Ok(Value::Object(object))
    }
}

fn start(element: &BytesStart<'_>) -> Result<Element, String> {
    let mut read = Element {
        name: element.local_name().as_ref().to_owned(),
        ..Element::default()
    };
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| format!("element {}: {e}", read.name))?;
        let key = attribute.key.local_name().as_ref().to_owned();
        // Namespace declarations say nothing about the record.
        if key == "xmlns" || attribute.key.as_ref().starts_with("xmlns:") {
            continue;
        }
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("element {}: attribute {key}: {e}", read.name))?;
        read.add(format!("@{key}"), Value::String(value.into_owned()));
    }
    Ok(read)
}

/// Reads an XML document as JSON.
pub fn xml_to_json(text: &str) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("invalid xml at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(element) => open.push(start(&element)?),
            Event::Empty(element) => {
                let element = start(&element)?;
                let name = element.name.clone();
                let value = element.into_value()?;
                match open.last_mut() {
                    Some(parent) => parent.add(name, value),
                    None => root = Some((name, value)),
                }
            }
            Event::End(_) => {
                let element = open.pop().ok_or("an end tag without its start")?;
                let name = element.name.clone();
                let value = element.into_value()?;
                match open.last_mut() {
                    Some(parent) => parent.add(name, value),
                    None => root = Some((name, value)),
                }
            }
            Event::Text(content) => {
                if let Some(element) = open.last_mut() {
                    element.text.push_str(&content);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(element) = open.last_mut() {
                    // Kept escaped; the element's text is unescaped as a whole at its end.
                    element.text.push('&');
                    element.text.push_str(&reference);
                    element.text.push(';');
                }
            }
            Event::CData(content) => {
                if let Some(element) = open.last_mut() {
                    element.text.push_str(&quick_xml::escape::escape(&*content));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err("the document ends inside an element".to_owned());
    }
    let (name, value) = root.ok_or("the document has no root element")?;
    Ok(Value::Object(Map::from_iter([(name, value)])))
}

/// Writes JSON shaped as [`xml_to_json`] reads (`{"<root>": …}`) as an XML document.
pub fn json_to_xml(value: &Value) -> Result<String, String> {
    let root = value
        .as_object()
        .filter(|object| object.len() == 1)
        .ok_or("an XML body is an object with exactly one key, the root element")?;
    let mut writer = Writer::new(Vec::new());
    let io = |e: std::io::Error| format!("cannot write xml: {e}");
    writer
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    for (name, value) in root {
        write_element(&mut writer, name, value)?;
    }
    String::from_utf8(writer.into_inner()).map_err(|e| e.to_string())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn write_element(writer: &mut Writer<Vec<u8>>, name: &str, value: &Value) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write xml: {e}");
    if let Value::Array(items) = value {
        for item in items {
            write_element(writer, name, item)?;
        }
        return Ok(());
    }
    let mut attributes = BTreeMap::new();
    let mut children = Vec::new();
    let mut text = scalar(value);
    if let Value::Object(fields) = value {
        for (key, field) in fields {
            if let Some(attribute) = key.strip_prefix('@') {
                attributes.insert(attribute.to_owned(), scalar(field).unwrap_or_default());
            } else if key == "#text" {
                text = scalar(field);
            } else {
                children.push((key, field));
            }
        }
    }
    let start = BytesStart::new(name).with_attributes(
        attributes
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    );
    if children.is_empty() && text.is_none() {
        return writer.write_event(Event::Empty(start)).map_err(io);
    }
    writer.write_event(Event::Start(start)).map_err(io)?;
    if let Some(text) = &text {
        writer
            .write_event(Event::Text(BytesText::new(text)))
            .map_err(io)?;
    }
    for (key, child) in children {
        write_element(writer, key, child)?;
    }
    writer
        .write_event(Event::End(BytesEnd::new(name)))
        .map_err(io)
}

/// Reads a CSV file with a header row as an array of objects of strings.
pub fn csv_to_json(text: &str) -> Result<Value, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("invalid csv header: {e}"))?
        .clone();
    let mut rows = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("invalid csv row {}: {e}", index + 1))?;
        let object: Map<String, Value> = headers
            .iter()
            .zip(row.iter())
            .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
            .collect();
        rows.push(Value::Object(object));
    }
    Ok(Value::Array(rows))
}

/// A SOAP fault in an answer, by whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapFault {
    /// `Client` (1.1) or `Sender` (1.2): the request was wrong; sending it again is useless.
    Request { code: String, message: String },
    /// `Server` or `Receiver`: the partner failed; another attempt may succeed.
    Partner { code: String, message: String },
}

/// The SOAP 1.1 or 1.2 fault in `text`, if it is a SOAP envelope carrying one. The code is
/// given without its namespace prefix (`Client.AuthenticationFailed`).
pub fn soap_fault(text: &str) -> Option<SoapFault> {
    let envelope = xml_to_json(text).ok()?;
    let fault = envelope.pointer("/Envelope/Body/Fault")?;
    let text_at = |pointers: &[&str]| {
        pointers.iter().find_map(|pointer| {
            let value = fault.pointer(pointer)?;
            value
                .as_str()
                .or_else(|| value.get("#text").and_then(Value::as_str))
                .map(str::to_owned)
        })
    };
    let code = text_at(&["/faultcode", "/Code/Value"]).unwrap_or_default();
    let code = code
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let message = text_at(&["/faultstring", "/Reason/Text"]).unwrap_or_default();
    let partner = code.starts_with("Server") || code.starts_with("Receiver");
    Some(if partner {
        SoapFault::Partner { code, message }
    } else {
        SoapFault::Request { code, message }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn xml_reads_as_json_and_writes_back() {
        let text = r#"<?xml version="1.0"?>
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
              <soap:Body>
                <WorkOrders total="2">
                  <WorkOrder id="7"><Title>Nurse &amp; carer</Title><Rate currency="USD">41.5</Rate></WorkOrder>
                  <WorkOrder id="8"><Title><![CDATA[<Welder>]]></Title><Note/></WorkOrder>
                </WorkOrders>
              </soap:Body>
            </soap:Envelope>"#;
        let value = xml_to_json(text).unwrap();
        let orders = &value["Envelope"]["Body"]["WorkOrders"];
        assert_eq!(orders["@total"], "2");
        assert_eq!(orders["WorkOrder"][0]["@id"], "7");
        assert_eq!(orders["WorkOrder"][0]["Title"], "Nurse & carer");
        assert_eq!(
            orders["WorkOrder"][0]["Rate"],
            json!({"@currency": "USD", "#text": "41.5"})
        );
        assert_eq!(orders["WorkOrder"][1]["Title"], "<Welder>");
        assert_eq!(orders["WorkOrder"][1]["Note"], "");
        let written = json_to_xml(&json!({"WorkOrders": orders})).unwrap();
        assert_eq!(
            xml_to_json(&written).unwrap(),
            json!({"WorkOrders": orders})
        );
        assert!(written.contains("Nurse &amp; carer"), "{written}");
        assert!(xml_to_json("<a><b></a>").is_err());
        assert!(xml_to_json("").is_err());
        assert!(json_to_xml(&json!({"a": 1, "b": 2})).is_err());
    }

    #[test]
    fn csv_reads_rows_by_header() {
        let rows = csv_to_json("id, worker,hours\n1,Ada,7.5\n2,\"Byron, G\",8\n").unwrap();
        assert_eq!(
            rows,
            json!([
                {"id": "1", "worker": "Ada", "hours": "7.5"},
                {"id": "2", "worker": "Byron, G", "hours": "8"},
            ])
        );
        assert!(csv_to_json("a,b\n1\n").is_err());
    }
}

#[cfg(test)]
mod soap_tests {
    use super::*;

    #[test]
    fn soap_faults_are_read_with_their_side() {
        let client = r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client.AuthenticationFailed</faultcode><faultstring>unknown account</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
        assert_eq!(
            soap_fault(client),
            Some(SoapFault::Request {
                code: "Client.AuthenticationFailed".into(),
                message: "unknown account".into()
            })
        );
        let server = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text xml:lang="en">busy</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        assert!(
            matches!(soap_fault(server), Some(SoapFault::Partner { code, .. }) if code == "Receiver")
        );
        assert_eq!(soap_fault("<Envelope><Body><Ok/></Body></Envelope>"), None);
        assert_eq!(soap_fault("not xml"), None);
    }
}
