//! gRPC handlers: decode the request, authorise the caller, apply the
//! domain rules, call the store and write events in one transaction, encode.

pub mod accounts;
pub mod activities;
pub mod contacts;
pub mod data;
pub mod fields;
pub mod import_gate;
pub mod masks;
pub mod search;
pub mod segments;

use std::sync::Arc;

use crm_proto::crm::customers::v1::{Entity, LifecycleStageChanged, OwnerTransferred};
use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::outbox::Outbox;
use kit::Error;
use sqlx::PgConnection;

use uuid::Uuid;

/// What every handler needs.
pub struct State {
    pub db: Database,
    pub outbox: Outbox,
    pub imports: import_gate::ImportGate,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

pub use kit::rpc::{commit, handle, page_response};

/// What a record looked like before and after a write, for the events that
/// accompany `*.updated`.
pub struct Change<'a> {
    pub entity: Entity,
    pub id: Uuid,
    pub version: i64,
    pub stage: (i32, i32),
    pub owner: (&'a str, &'a str),
    pub team: &'a str,
}

/// Publishes `lifecycle_changed` and `owner_transferred` when they apply.
pub async fn publish_side_events(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    change: Change<'_>,
) -> kit::Result<()> {
    if change.stage.0 != change.stage.1 {
        let event = LifecycleStageChanged {
            entity: change.entity as i32,
            id: change.id.to_string(),
            from: change.stage.0,
            to: change.stage.1,
        };
        state
            .outbox
            .enqueue(tx, caller, change.id, change.version, &event)
            .await?;
    }
    if change.owner.0 != change.owner.1 {
        publish_transfers(
            state,
            tx,
            caller,
            change.entity,
            &[change.id],
            change.owner.0,
            change.owner.1,
            change.team,
        )
        .await?;
    }
    Ok(())
}

/// Publishes one `owner_transferred` per moved record.
#[allow(clippy::too_many_arguments)]
pub async fn publish_transfers(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    entity: Entity,
    ids: &[Uuid],
    from: &str,
    to: &str,
    to_team: &str,
) -> kit::Result<()> {
    for id in ids {
        let event = OwnerTransferred {
            entity: entity as i32,
            id: id.to_string(),
            from_owner_id: from.to_owned(),
            to_owner_id: to.to_owned(),
            to_team_id: to_team.to_owned(),
        };
        state.outbox.enqueue(tx, caller, *id, 0, &event).await?;
    }
    Ok(())
}

/// The two records of a merge, checked once for both entities.
pub struct MergePair {
    pub survivor: Uuid,
    pub merged: Uuid,
}

impl MergePair {
    pub fn parse(survivor: &str, merged: &str) -> kit::Result<Self> {
        let survivor = crate::domain::parse_id("survivor_id", survivor)?;
        let merged = crate::domain::parse_id("merged_id", merged)?;
        if survivor == merged {
            return Err(Error::invalid("merged_id", "must differ from survivor_id"));
        }
        Ok(Self { survivor, merged })
    }

    /// Ids in the order their rows are locked: lower first, so two
    /// opposite merges cannot deadlock.
    pub fn lock_order(&self) -> (Uuid, Uuid) {
        (
            self.survivor.min(self.merged),
            self.survivor.max(self.merged),
        )
    }

    /// Records loaded in lock order, as (survivor, merged).
    pub fn arrange<T>(&self, first: T, second: T) -> (T, T) {
        if self.survivor < self.merged {
            (first, second)
        } else {
            (second, first)
        }
    }
}
