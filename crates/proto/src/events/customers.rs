//! Events of `crm.customers.v1`, published on `crm.customers.<entity>.<verb>`.

use super::{domain_events, DomainEvent};
use crate::crm::customers::v1 as pb;

domain_events!("crm.customers.v1", pb, {
    AccountCreated => "crm.customers.account.created.v1",
    AccountUpdated => "crm.customers.account.updated.v1",
    AccountDeleted => "crm.customers.account.deleted.v1",
    AccountMerged => "crm.customers.account.merged.v1",
    ContactCreated => "crm.customers.contact.created.v1",
    ContactUpdated => "crm.customers.contact.updated.v1",
    ContactDeleted => "crm.customers.contact.deleted.v1",
    ContactMerged => "crm.customers.contact.merged.v1",
    ContactErased => "crm.customers.contact.erased.v1",
    ConsentChanged => "crm.customers.contact.consent_changed.v1",
    ActivityLogged => "crm.customers.activity.logged.v1",
    ActivityUpdated => "crm.customers.activity.updated.v1",
    ActivityDeleted => "crm.customers.activity.deleted.v1",
    TaskDue => "crm.customers.task.due.v1",
    TaskCompleted => "crm.customers.task.completed.v1",
    AuditRecorded => "crm.customers.audit.recorded.v1",
});

impl DomainEvent for pb::LifecycleStageChanged {
    const TYPE: &'static str = "crm.customers.contact.lifecycle_changed.v1";
    const SCHEMA: &'static str = "crm.customers.v1.LifecycleStageChanged";

    fn event_type(&self) -> &'static str {
        match self.entity() {
            pb::Entity::Account => "crm.customers.account.lifecycle_changed.v1",
            _ => Self::TYPE,
        }
    }
}

impl DomainEvent for pb::OwnerTransferred {
    const TYPE: &'static str = "crm.customers.contact.owner_transferred.v1";
    const SCHEMA: &'static str = "crm.customers.v1.OwnerTransferred";

    fn event_type(&self) -> &'static str {
        match self.entity() {
            pb::Entity::Account => "crm.customers.account.owner_transferred.v1",
            _ => Self::TYPE,
        }
    }
}
