//! The activity dashboard: calls, e-mails, meetings, chats, notes and
//! tasks per rep over a period.

use crm_proto::crm::reporting::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::time::to_optional_timestamp;

use super::{Filters, State};
use crate::domain::access::{authorize_read, scope};
use crate::store::activities::{self, RepCounts};
use crate::store::{freshness, Selection};

fn rep(c: RepCounts) -> RepActivity {
    RepActivity {
        owner_id: c.owner_id.map(|o| o.to_string()).unwrap_or_default(),
        calls: c.calls,
        emails: c.emails,
        meetings: c.meetings,
        chats: c.chats,
        notes: c.notes,
        tasks_created: c.tasks_created,
        tasks_completed: c.tasks_completed,
    }
}

pub async fn dashboard(
    state: &State,
    caller: CallerContext,
    request: GetActivityDashboardRequest,
) -> kit::Result<GetActivityDashboardResponse> {
    authorize_read(&caller)?;
    let mut v = Violations::new();
    let filters = Filters::read(
        request.from.as_ref(),
        request.to.as_ref(),
        ("owner_id", &request.owner_id),
        ("team_id", &request.team_id),
        state.clock.now(),
        &mut v,
    )?;
    v.into_result()?;
    let scope = scope(&caller);
    let selection = Selection {
        tenant: caller.tenant_id,
        scope: &scope,
        owner: filters.owner,
        team: filters.team,
    };
    let mut tx = state.snapshot(&caller).await?;
    let p = filters.period;
    let reps = activities::counts(&mut tx, &selection, p, true).await?;
    let total = activities::counts(&mut tx, &selection, p, false).await?;
    let as_of = freshness::as_of(&mut tx, caller.tenant_id, "customers").await?;
    Ok(GetActivityDashboardResponse {
        dashboard: Some(ActivityDashboard {
            reps: reps.into_iter().map(rep).collect(),
            total: total.into_iter().next().map(rep),
            as_of: to_optional_timestamp(as_of),
        }),
    })
}
