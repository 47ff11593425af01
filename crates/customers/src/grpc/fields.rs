//! `crm.customers.v1.FieldService`.

use crm_proto::crm::customers::v1::field_service_server::FieldService;
use crm_proto::crm::customers::v1::*;
use kit::Error;
use tonic::{Request, Response, Status};

use super::{commit, handle, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::custom_fields::{entity_name, validate_definition};
use crate::store::fields as store;

pub struct FieldHandlers(pub SharedState);

#[tonic::async_trait]
impl FieldService for FieldHandlers {
    async fn define_field(
        &self,
        request: Request<DefineFieldRequest>,
    ) -> Result<Response<DefineFieldResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::DefineFields)?;
            let mut field = request
                .field
                .ok_or_else(|| Error::invalid("field", "is required"))?;
            validate_definition(&mut field)?;
            let mut tx = self.0.begin(&caller).await?;
            store::upsert(&mut tx, caller.tenant_id, &field).await?;
            commit(tx).await?;
            Ok(DefineFieldResponse { field: Some(field) })
        })
        .await
    }

    async fn list_fields(
        &self,
        request: Request<ListFieldsRequest>,
    ) -> Result<Response<ListFieldsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let fields =
                store::list(&mut tx, caller.tenant_id, entity_name(request.entity())).await?;
            Ok(ListFieldsResponse { fields })
        })
        .await
    }

    async fn delete_field(
        &self,
        request: Request<DeleteFieldRequest>,
    ) -> Result<Response<DeleteFieldResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::DefineFields)?;
            let entity = entity_name(request.entity()).ok_or_else(|| {
                Error::invalid("entity", "must be ENTITY_ACCOUNT or ENTITY_CONTACT")
            })?;
            let mut tx = self.0.begin(&caller).await?;
            if !store::delete(&mut tx, caller.tenant_id, entity, &request.key).await? {
                return Err(Error::not_found("custom field", &request.key));
            }
            commit(tx).await?;
            Ok(DeleteFieldResponse {})
        })
        .await
    }
}
