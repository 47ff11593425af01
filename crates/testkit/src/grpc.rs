//! Helpers shared by the services' gRPC tests.

use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::{Account, CreateAccountRequest};
use kit::auth::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A client whose calls carry a bearer token.
pub type Authed = InterceptedService<Channel, BearerToken>;

/// The fields named by an INVALID_ARGUMENT status (panics on another code).
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Creates an account in the customers service.
pub async fn create_account(
    accounts: &mut AccountServiceClient<Authed>,
    name: &str,
    domain: &str,
) -> Account {
    accounts
        .create_account(CreateAccountRequest {
            account: Some(Account {
                name: name.into(),
                domain: domain.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create account")
        .into_inner()
        .account
        .expect("an account in the answer")
}
