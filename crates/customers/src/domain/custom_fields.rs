//! Custom fields of accounts and contacts: the shared definition model
//! (`kit::custom_fields`) for these two entities.

use crm_proto::crm::customers::v1::{Entity, FieldDefinition};
use kit::error::Violations;

pub use kit::custom_fields::{to_proto_values, FieldCatalog};

/// The storage name of an entity with custom fields.
pub fn entity_name(entity: Entity) -> Option<&'static str> {
    match entity {
        Entity::Account => Some("account"),
        Entity::Contact => Some("contact"),
        Entity::Unspecified => None,
    }
}

/// Checks a definition before it is stored.
pub fn validate_definition(field: &mut FieldDefinition) -> kit::Result<()> {
    let mut violations = Violations::new();
    if entity_name(field.entity()).is_none() {
        violations.add("field.entity", "must be ENTITY_ACCOUNT or ENTITY_CONTACT");
    }
    kit::custom_fields::check_definition(field, &mut violations);
    violations.into_result()
}
