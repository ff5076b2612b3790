//! Wire forms of document parses, for [`crate::grpc`].

use plugboard_proto::common::v1::Money;
use plugboard_proto::sync::v1 as wire;

use crate::documents::store::{ParseRow, ParseState, Usage};
use crate::documents::{ParseRequest, Parsed, money};

pub fn parse_request(request: wire::ParseDocumentRequest) -> ParseRequest {
    ParseRequest {
        connection_id: request.connection_id,
        document_type: request.document_type,
        file_name: request.file_name,
        content: request.content,
        content_type: request.content_type,
    }
}

pub fn parse_response(parsed: Parsed) -> wire::ParseDocumentResponse {
    wire::ParseDocumentResponse {
        parse: Some(document_parse(parsed.parse)),
        records: parsed.records,
        reused: parsed.reused,
    }
}

pub fn usage_response(usage: Usage, next_page_token: String) -> wire::GetParseUsageResponse {
    wire::GetParseUsageResponse {
        parses: usage.parses.into_iter().map(document_parse).collect(),
        next_page_token,
        totals: usage
            .totals
            .into_iter()
            .map(|(currency, micros)| Money {
                amount: money::from_micros(micros),
                currency,
            })
            .collect(),
        documents: usage.documents,
        reuses: usage.reuses,
    }
}

fn document_parse(row: ParseRow) -> wire::DocumentParse {
    wire::DocumentParse {
        cost: (!row.cost_currency.is_empty()).then(|| Money {
            amount: money::from_micros(row.cost_micros),
            currency: row.cost_currency.clone(),
        }),
        quarantined: row.state == ParseState::Quarantined,
        connection_id: row.connection_id,
        connector: row.connector,
        content_sha256: row.content_sha256,
        document_id: row.document_id,
        document_type: row.document_type,
        file_name: row.file_name,
        parsed_at: row.parsed_at,
        reuses: row.reuses,
        entities: row.entities,
    }
}
