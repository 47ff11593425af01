//! Domain events: the typed payloads services publish, and the names they
//! travel under.
//!
//! An event type `crm.customers.contact.created.v1` is published on subject
//! `crm.customers.contact.created` of stream `CRM_CUSTOMERS`. A [`Naming`]
//! with a non-empty prefix moves all of that under `<prefix>.` /
//! `<PREFIX>_`, so tests can share one NATS server without seeing each
//! other's events.

pub use crm_proto::crm::common::v1::Event;

pub use crm_proto::events::DomainEvent;

/// The subject an event type is published on: its type without the version.
pub fn subject_of(event_type: &str) -> &str {
    match event_type.rsplit_once('.') {
        Some((head, version))
            if version.starts_with('v') && version[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            head
        }
        _ => event_type,
    }
}

/// Decodes the typed payload of an event.
pub fn decode_data<E: DomainEvent>(event: &Event) -> Result<E, prost::DecodeError> {
    E::decode(event.data.as_slice())
}

/// Maps logical subject and stream names to the ones used on this server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `crm.customers.contact.created` -> `<prefix>.crm.customers.contact.created`.
    pub fn subject(&self, subject: &str) -> String {
        if self.prefix.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{}", self.prefix, subject)
        }
    }

    /// The stream of a producing domain: `customers` -> `CRM_CUSTOMERS`.
    pub fn stream(&self, domain: &str) -> String {
        let name = format!("CRM_{}", domain.to_ascii_uppercase());
        if self.prefix.is_empty() {
            name
        } else {
            format!("{}_{}", self.prefix.to_ascii_uppercase(), name)
        }
    }
}

/// A contact point (normalised e-mail or E.164 phone) as erasure events
/// carry it: SHA-256 of `<tenant>:<point>` in hex, so the event names no
/// address, yet a service holding the same address (a lead with that
/// e-mail) recognises it. PostgreSQL computes the same value with
/// `encode(sha256(convert_to(tenant_id::text || ':' || point, 'UTF8')), 'hex')`.
pub fn contact_point_hash(tenant: uuid::Uuid, point: &str) -> String {
    address_hash(&format!("{tenant}:{point}"))
}

/// The hex SHA-256 of a normalised address, for lists that must recognise
/// an address without holding it (e.g. hard bounces across tenants).
pub fn address_hash(point: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(point))
}

/// The tenant and recipient an outbound message's reference names, as
/// delivery reports quote it: the Message-ID (`<tenant>.<recipient>@domain`,
/// brackets optional) or the SMS reference (`<tenant>.<recipient>`).
pub fn message_reference(reference: &str) -> Option<(uuid::Uuid, uuid::Uuid)> {
    let bare = reference
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let local = bare.split('@').next()?;
    let (tenant, recipient) = local.split_once('.')?;
    Some((
        uuid::Uuid::try_parse(tenant).ok()?,
        uuid::Uuid::try_parse(recipient).ok()?,
    ))
}

/// An event as webhooks post it: its CloudEvents attributes and `data`,
/// the payload as JSON (the gateway's and marketing's webhooks alike).
pub fn to_json(event: &Event, data: serde_json::Value) -> serde_json::Value {
    let occurred = event
        .occurred_at
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339());
    serde_json::json!({
        "id": event.id,
        "type": event.r#type,
        "source": event.source,
        "tenant_id": event.tenant_id,
        "subject": event.subject,
        "aggregate_version": event.aggregate_version,
        "occurred_at": occurred,
        "actor": event.actor,
        "data_schema": event.data_schema,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_drops_the_version_only() {
        assert_eq!(
            subject_of("crm.sales.opportunity.won.v1"),
            "crm.sales.opportunity.won"
        );
        assert_eq!(
            subject_of("crm.sales.opportunity.won.v12"),
            "crm.sales.opportunity.won"
        );
        assert_eq!(
            subject_of("crm.sales.opportunity.won"),
            "crm.sales.opportunity.won"
        );
        assert_eq!(subject_of("crm.sales.vip.created"), "crm.sales.vip.created");
    }

    #[test]
    fn prefix_moves_subjects_and_streams() {
        let naming = Naming::new("t42");
        assert_eq!(naming.subject("crm.customers.>"), "t42.crm.customers.>");
        assert_eq!(naming.stream("customers"), "T42_CRM_CUSTOMERS");
        assert_eq!(Naming::default().stream("sales"), "CRM_SALES");
    }
}
