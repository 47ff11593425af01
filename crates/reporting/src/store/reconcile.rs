//! Reporting's side of a reconciliation: the totals it counts, keyed
//! as the reconcile handler keys the sources' answers.

use kit::access::Scope;
use rust_decimal::Decimal;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

/// (figure, key, value).
pub type Total = (String, String, Decimal);

/// Every total in one statement: one snapshot, so no event applied
/// between two queries can make them disagree with each other.
pub async fn totals(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
) -> sqlx::Result<Vec<Total>> {
    let parts = [
        "SELECT 'open_deals', coalesce(pipeline_id::text, 'none'), count(*)::numeric FROM deals WHERE status = 1 AND tenant_id = ",
        "SELECT 'open_deal_amount', coalesce(pipeline_id::text, 'none') || ' ' || currency, sum(amount) FROM deals WHERE status = 1 AND tenant_id = ",
        "SELECT 'won_deal_amount', to_char(date_trunc('quarter', closed_at AT TIME ZONE 'UTC'), 'YYYY-\"Q\"Q') || ' ' || currency, sum(amount) FROM deals WHERE status = 2 AND closed_at IS NOT NULL AND tenant_id = ",
        "SELECT 'open_tickets', coalesce(team_id::text, 'none'), count(*)::numeric FROM tickets WHERE status NOT IN (6, 7) AND tenant_id = ",
    ];
    let mut query = QueryBuilder::new("");
    for (i, sql) in parts.into_iter().enumerate() {
        if i > 0 {
            query.push(" UNION ALL ");
        }
        query.push("(").push(sql).push_bind(tenant);
        scope.push_sql(&mut query);
        query.push(" GROUP BY 1, 2)");
    }
    query.build_query_as().fetch_all(tx).await
}
