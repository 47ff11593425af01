//! The import's CSV reader and row mapping: any bytes, in any chunking,
//! give numbered rows or per-row errors (never a panic, never an unbounded
//! record), and every row maps onto a contact and an account with errors
//! that name a column of the file.
#![no_main]

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use crm_proto::crm::customers::v1::{Entity, ImportFormat, ImportHeader};
use customers::domain::custom_fields::FieldCatalog;
use customers::domain::transfer::{
    account_from_row, check_header, contact_from_row, parse_csv, MAX_RECORD_BYTES,
};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size the upload arrives in.
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let (chunks_tx, chunks_rx) = mpsc::channel(body.len() / chunk + 2);
    for piece in body.chunks(chunk) {
        chunks_tx
            .try_send(Bytes::copy_from_slice(piece))
            .expect("the channel holds every chunk");
    }
    drop(chunks_tx);
    // At most one message per byte, plus the end.
    let (rows_tx, mut rows_rx) = mpsc::channel(body.len() + 2);
    parse_csv(chunks_rx, rows_tx);

    let catalog = FieldCatalog::new(Vec::new());
    let mut last = -1;
    let mut header_columns: Option<HashSet<String>> = None;
    while let Ok(parsed) = rows_rx.try_recv() {
        assert!(parsed.number > last, "row numbers increase");
        last = parsed.number;
        let row = match parsed.row {
            Ok(row) => row,
            Err(error) => {
                assert!(!error.reason.is_empty(), "a row error says why");
                continue;
            }
        };
        assert!(
            row.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                <= 2 * MAX_RECORD_BYTES + 64 * 1024,
            "no record past the limit"
        );
        let columns =
            header_columns.get_or_insert_with(|| row.iter().map(|(k, _)| k.clone()).collect());
        for (entity, targets) in [
            (
                Entity::Contact,
                [
                    "email",
                    "phone",
                    "birthday",
                    "lifecycle_stage",
                    "owner_id",
                    "tags",
                ],
            ),
            (
                Entity::Account,
                [
                    "name",
                    "domain",
                    "phone",
                    "lifecycle_stage",
                    "owner_id",
                    "tags",
                ],
            ),
        ] {
            // Map the file's columns in order onto a few fields, plus one custom field.
            let mapping: HashMap<String, String> = row
                .iter()
                .zip(
                    targets
                        .iter()
                        .map(|t| t.to_string())
                        .chain(["custom.score".to_owned()]),
                )
                .map(|((column, _), target)| (column.clone(), target))
                .collect();
            let header = ImportHeader {
                entity: entity as i32,
                format: ImportFormat::Csv as i32,
                mapping,
                ..Default::default()
            };
            let Ok(plan) = check_header(header) else {
                continue;
            };
            let errors = if entity == Entity::Contact {
                contact_from_row(&row, &plan, &catalog).2
            } else {
                account_from_row(&row, &plan, &catalog).2
            };
            for error in errors {
                assert!(
                    error.column.is_empty() || columns.contains(&error.column),
                    "a row error names a column of the file: {:?}",
                    error.column
                );
            }
        }
    }
});
