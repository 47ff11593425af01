//! Generated protobuf messages and tonic clients/servers for every package
//! under `proto/`. Module paths mirror protobuf packages: `crm::common::v1`.

pub mod events;
pub mod filters;
pub mod pii;

/// Encoded `FileDescriptorSet` of every package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crm_descriptor");

/// Google's API annotations (`google.api.http`, `google.api.field_behavior`),
/// which the gateway reads from the descriptors to derive REST and OpenAPI.
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

pub mod crm {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("crm.common.v1");
        }
    }
    pub mod customers {
        pub mod v1 {
            tonic::include_proto!("crm.customers.v1");
        }
    }
    pub mod marketing {
        pub mod v1 {
            tonic::include_proto!("crm.marketing.v1");
        }
    }
    pub mod reporting {
        pub mod v1 {
            tonic::include_proto!("crm.reporting.v1");
        }
    }
    pub mod sales {
        pub mod v1 {
            tonic::include_proto!("crm.sales.v1");
        }
    }
    pub mod servicedesk {
        pub mod v1 {
            tonic::include_proto!("crm.servicedesk.v1");
        }
    }
}
