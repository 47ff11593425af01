//! Compiles every `.proto` under the workspace's `proto/` folder with protox
//! (a protobuf compiler written in Rust), so building needs no system `protoc`.
//! The file descriptor set is kept for gRPC server reflection.

use std::path::{Path, PathBuf};

const PII_MESSAGES: [&str; 33] = [
    "crm.reporting.v1.ReportSchedule",
    "crm.servicedesk.v1.NpsResponse",
    "crm.servicedesk.v1.AnswerNpsSurveyRequest",
    "crm.servicedesk.v1.Ticket",
    "crm.servicedesk.v1.SubmitSupportFormRequest",
    "crm.servicedesk.v1.RequestPortalLinkRequest",
    "crm.servicedesk.v1.PortalTicket",
    "crm.servicedesk.v1.PortalMessage",
    "crm.servicedesk.v1.ListPortalTicketsRequest",
    "crm.servicedesk.v1.GetPortalTicketRequest",
    "crm.servicedesk.v1.OpenPortalTicketRequest",
    "crm.servicedesk.v1.ReplyOnPortalRequest",
    "crm.servicedesk.v1.SearchPortalArticlesRequest",
    "crm.servicedesk.v1.GetPortalArticleRequest",
    "crm.servicedesk.v1.TicketMessage",
    "crm.servicedesk.v1.SatisfactionRating",
    "crm.servicedesk.v1.AnswerSurveyRequest",
    "crm.marketing.v1.SubmittedLead",
    "crm.marketing.v1.SubmitFormRequest",
    "crm.marketing.v1.SendRecipient",
    "crm.marketing.v1.TestSendRequest",
    "crm.marketing.v1.RenderedMessage",
    "crm.marketing.v1.Suppression",
    "crm.marketing.v1.GetReachabilityResponse",
    "crm.sales.v1.Lead",
    "crm.customers.v1.Contact",
    "crm.customers.v1.Email",
    "crm.customers.v1.Phone",
    "crm.customers.v1.Handle",
    "crm.customers.v1.Address",
    "crm.customers.v1.ImportRequest",
    "crm.customers.v1.ExportResponse",
    "crm.customers.v1.ExportContactDataResponse",
];

const SERDE: &str = "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();

    // Encoded by protox itself, not through prost_types: that keeps the
    // custom options (google.api.http, field_behavior) the gateway reads.
    let descriptors = protox::Compiler::new([&proto_root])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)?
        .encode_file_descriptor_set();
    let descriptor_path = PathBuf::from(std::env::var("OUT_DIR")?).join("crm_descriptor.bin");
    std::fs::write(&descriptor_path, descriptors)?;

    tonic_prost_build::configure()
        // Messages holding personal data get hand-written, masked Debug
        // impls (src/pii.rs) so they never reach logs in clear.
        .skip_debug(PII_MESSAGES)
        // Stored as JSON columns by the customers service.
        .type_attribute("crm.customers.v1.Email", SERDE)
        .type_attribute("crm.customers.v1.Phone", SERDE)
        .type_attribute("crm.customers.v1.Handle", SERDE)
        .type_attribute("crm.customers.v1.Address", SERDE)
        .type_attribute("crm.customers.v1.RelatedRecord", SERDE)
        // Stored as JSON columns by the marketing service.
        .type_attribute("crm.marketing.v1.FormField", SERDE)
        .type_attribute("crm.marketing.v1.SubmittedLead", SERDE)
        .type_attribute("crm.marketing.v1.EarnRule", SERDE)
        .type_attribute("crm.marketing.v1.Tier", SERDE)
        .type_attribute("crm.marketing.v1.RuleCondition", SERDE)
        .type_attribute("crm.marketing.v1.RuleAction", SERDE)
        .type_attribute("crm.marketing.v1.DateTrigger", SERDE)
        // Stored as JSON columns by the service desk.
        .type_attribute("crm.servicedesk.v1.WorkingHours", SERDE)
        .type_attribute("crm.servicedesk.v1.Attachment", SERDE)
        .type_attribute("crm.servicedesk.v1.AccountFacts", SERDE)
        .type_attribute("crm.servicedesk.v1.Escalation", SERDE)
        .type_attribute("crm.servicedesk.v1.TicketChanges", SERDE)
        .type_attribute("crm.servicedesk.v1.TicketJobResult", SERDE)
        .skip_protoc_run()
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&files, std::slice::from_ref(&proto_root))?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            out.push(path);
        }
    }
    Ok(())
}
