//! Events as consumers receive them from JetStream: any payload either
//! fails to decode or gives an envelope the webhook body renders, with its
//! data decoded by the schema it names (the first byte swaps in a schema
//! the platform publishes, so typed payload decoding is reached too).
#![no_main]

use crm_proto::crm::common::v1::Event;
use libfuzzer_sys::fuzz_target;
use prost::Message;

const SCHEMAS: &[&str] = &[
    "crm.customers.v1.ContactCreated",
    "crm.customers.v1.ContactMerged",
    "crm.customers.v1.ContactErased",
    "crm.customers.v1.AccountCreated",
    "crm.sales.v1.LeadCreated",
    "crm.sales.v1.OpportunityWon",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let Ok(mut event) = Event::decode(payload) else {
        return;
    };
    let _ = kit::events::subject_of(&event.r#type);
    if let Some(schema) = SCHEMAS.get(usize::from(pick) % (SCHEMAS.len() + 1)) {
        event.data_schema = (*schema).to_owned();
    }
    let body = gateway::webhooks::body(&event);
    let text = serde_json::to_vec(&body).expect("a JSON value serialises");
    let back: serde_json::Value = serde_json::from_slice(&text).expect("the body is valid JSON");
    assert_eq!(back["id"], serde_json::Value::String(event.id.clone()));
});
