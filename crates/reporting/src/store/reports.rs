//! Saved reports and report dashboards, and a checked [`Plan`] compiled to
//! SQL: identifiers from the dataset catalogue only, every value bound,
//! under the caller's visibility, a statement timeout and a row cap.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::customers::v1::Operator;
use crm_proto::crm::reporting::v1::{Aggregate, DateBucket};
use kit::access::Scope;
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::domain::report::{Comparison, Dimension, Field, FieldType, MeasurePlan, Operand, Plan};

/// How long one report may compute.
pub const STATEMENT_TIMEOUT: &str = "10s";

// ---- saved reports and dashboards ----

/// Who may see a shared record: its owner, its team when shared with the
/// team, everyone when shared with the tenant; admins see every one.
pub struct Viewer<'a> {
    pub user: Option<Uuid>,
    pub teams: &'a [Uuid],
    pub admin: bool,
}

impl Viewer<'_> {
    fn push_condition(&self, query: &mut QueryBuilder<'_, Postgres>) {
        if self.admin {
            query.push("TRUE");
            return;
        }
        query
            .push("(sharing = 3 OR owner_id = ")
            .push_bind(self.user)
            .push(" OR (sharing = 2 AND team_id = ANY(")
            .push_bind(self.teams.to_vec())
            .push(")))");
    }
}

/// A saved report's row.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct SavedReport {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub definition: Vec<u8>,
    pub sharing: i16,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub chart: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

const REPORT_COLUMNS: &str = "id, name, description, definition, sharing, owner_id, team_id, chart, version, created_at, created_by, updated_at, updated_by";

pub struct NewReport<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    pub definition: Vec<u8>,
    pub sharing: i16,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
    pub chart: &'a str,
    pub by: &'a str,
}

pub async fn insert_report(
    tx: &mut PgConnection,
    tenant: Uuid,
    r: &NewReport<'_>,
) -> sqlx::Result<SavedReport> {
    sqlx::query_as(&format!(
        "INSERT INTO reports (tenant_id, id, name, description, definition, sharing, owner_id, team_id, chart, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {REPORT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(r.id)
    .bind(r.name)
    .bind(r.description)
    .bind(&r.definition)
    .bind(r.sharing)
    .bind(r.owner)
    .bind(r.team)
    .bind(r.chart)
    .bind(r.by)
    .fetch_one(tx)
    .await
}

pub async fn update_report(
    tx: &mut PgConnection,
    tenant: Uuid,
    r: &NewReport<'_>,
) -> sqlx::Result<SavedReport> {
    sqlx::query_as(&format!(
        "UPDATE reports SET name = $3, description = $4, definition = $5, sharing = $6, team_id = $7, chart = $8, \
         version = version + 1, updated_at = now(), updated_by = $9 WHERE tenant_id = $1 AND id = $2 RETURNING {REPORT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(r.id)
    .bind(r.name)
    .bind(r.description)
    .bind(&r.definition)
    .bind(r.sharing)
    .bind(r.team)
    .bind(r.chart)
    .bind(r.by)
    .fetch_one(tx)
    .await
}

/// A report the viewer may see, locked for change when `lock`.
pub async fn find_report(
    tx: &mut PgConnection,
    tenant: Uuid,
    viewer: &Viewer<'_>,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<SavedReport>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {REPORT_COLUMNS} FROM reports WHERE tenant_id = "
    ));
    query
        .push_bind(tenant)
        .push(" AND id = ")
        .push_bind(id)
        .push(" AND ");
    viewer.push_condition(&mut query);
    if lock {
        query.push(" FOR UPDATE");
    }
    query.build_query_as().fetch_optional(tx).await
}

/// The most saved reports or dashboards one list answers.
pub const LIST_LIMIT: i64 = 500;

pub async fn list_reports(
    tx: &mut PgConnection,
    tenant: Uuid,
    viewer: &Viewer<'_>,
) -> sqlx::Result<Vec<SavedReport>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {REPORT_COLUMNS} FROM reports WHERE tenant_id = "
    ));
    query.push_bind(tenant).push(" AND ");
    viewer.push_condition(&mut query);
    query
        .push(" ORDER BY name, id LIMIT ")
        .push_bind(LIST_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// Deletes a record of `table` (`reports` or `report_dashboards`, this
/// crate's names); whether one was there.
pub async fn delete(
    tx: &mut PgConnection,
    table: &str,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query(&format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A report dashboard's row.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct DashboardRow {
    pub id: Uuid,
    pub name: String,
    pub report_ids: Vec<Uuid>,
    pub sharing: i16,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

const DASHBOARD_COLUMNS: &str = "id, name, report_ids, sharing, owner_id, team_id, version, created_at, created_by, updated_at, updated_by";

pub struct NewDashboard<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub report_ids: &'a [Uuid],
    pub sharing: i16,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
    pub by: &'a str,
}

pub async fn insert_dashboard(
    tx: &mut PgConnection,
    tenant: Uuid,
    d: &NewDashboard<'_>,
) -> sqlx::Result<DashboardRow> {
    sqlx::query_as(&format!(
        "INSERT INTO report_dashboards (tenant_id, id, name, report_ids, sharing, owner_id, team_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {DASHBOARD_COLUMNS}"
    ))
    .bind(tenant)
    .bind(d.id)
    .bind(d.name)
    .bind(d.report_ids)
    .bind(d.sharing)
    .bind(d.owner)
    .bind(d.team)
    .bind(d.by)
    .fetch_one(tx)
    .await
}

pub async fn update_dashboard(
    tx: &mut PgConnection,
    tenant: Uuid,
    d: &NewDashboard<'_>,
) -> sqlx::Result<DashboardRow> {
    sqlx::query_as(&format!(
        "UPDATE report_dashboards SET name = $3, report_ids = $4, sharing = $5, team_id = $6, version = version + 1, \
         updated_at = now(), updated_by = $7 WHERE tenant_id = $1 AND id = $2 RETURNING {DASHBOARD_COLUMNS}"
    ))
    .bind(tenant)
    .bind(d.id)
    .bind(d.name)
    .bind(d.report_ids)
    .bind(d.sharing)
    .bind(d.team)
    .bind(d.by)
    .fetch_one(tx)
    .await
}

pub async fn find_dashboard(
    tx: &mut PgConnection,
    tenant: Uuid,
    viewer: &Viewer<'_>,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<DashboardRow>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {DASHBOARD_COLUMNS} FROM report_dashboards WHERE tenant_id = "
    ));
    query
        .push_bind(tenant)
        .push(" AND id = ")
        .push_bind(id)
        .push(" AND ");
    viewer.push_condition(&mut query);
    if lock {
        query.push(" FOR UPDATE");
    }
    query.build_query_as().fetch_optional(tx).await
}

pub async fn list_dashboards(
    tx: &mut PgConnection,
    tenant: Uuid,
    viewer: &Viewer<'_>,
) -> sqlx::Result<Vec<DashboardRow>> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {DASHBOARD_COLUMNS} FROM report_dashboards WHERE tenant_id = "
    ));
    query.push_bind(tenant).push(" AND ");
    viewer.push_condition(&mut query);
    query
        .push(" ORDER BY name, id LIMIT ")
        .push_bind(LIST_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

// ---- computing a plan ----

/// A computed value, typed as its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Text(String),
    Enum(i16),
    Int(i64),
    Number(Decimal),
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

/// The rows of a plan (at most its limit) and whether more groups matched.
pub struct Computed {
    pub rows: Vec<Vec<Value>>,
    pub truncated: bool,
}

/// The currency most of the dataset's rows are in (amount datasets only).
pub async fn usual_currency(
    tx: &mut PgConnection,
    tenant: Uuid,
    plan: &Plan,
) -> sqlx::Result<Option<String>> {
    if !plan.dataset.has_amounts() {
        return Ok(None);
    }
    sqlx::query_scalar(&format!(
        "SELECT currency FROM {} WHERE tenant_id = $1 AND currency <> '' GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1",
        plan.dataset.table
    ))
    .bind(tenant)
    .fetch_optional(tx)
    .await
}

fn push_dimension(query: &mut QueryBuilder<'_, Postgres>, d: &Dimension) {
    let sql = d.field.sql;
    let Some(bucket) = d.bucket else {
        query.push(match d.field.r#type {
            FieldType::Id => format!("{sql}::text"),
            _ => sql.to_owned(),
        });
        return;
    };
    let (unit, format) = match bucket {
        DateBucket::Week => ("week", "YYYY-MM-DD"),
        DateBucket::Month => ("month", "YYYY-MM"),
        DateBucket::Quarter => ("quarter", "YYYY-\"Q\"Q"),
        DateBucket::Year => ("year", "YYYY"),
        _ => ("day", "YYYY-MM-DD"),
    };
    let at = match d.field.r#type {
        FieldType::Date => format!("{sql}::timestamp"),
        _ => format!("{sql} AT TIME ZONE 'UTC'"),
    };
    query.push(format!("to_char(date_trunc('{unit}', {at}), '{format}')"));
}

fn push_measure(query: &mut QueryBuilder<'_, Postgres>, m: &MeasurePlan, currency: &str) {
    let Some(field) = m.field else {
        query.push("count(*)");
        return;
    };
    let sql = field.sql;
    let function = match m.aggregate {
        Aggregate::DistinctCount => {
            query.push(format!("count(DISTINCT {sql})"));
            return;
        }
        Aggregate::Sum => "sum",
        Aggregate::Avg => "avg",
        Aggregate::Min => "min",
        _ => "max",
    };
    let round = m.aggregate == Aggregate::Avg;
    if round {
        query.push("round(");
    }
    query.push(format!("{function}({sql})"));
    if m.is_amount() {
        query
            .push(" FILTER (WHERE currency = ")
            .push_bind(currency.to_owned())
            .push(")");
    }
    if round {
        query.push(", 2)");
    }
}

/// One condition: the field's column, the operator, the bound operand.
fn push_comparison(query: &mut QueryBuilder<'_, Postgres>, c: &Comparison) {
    let sql = c.field.sql;
    match c.op {
        Operator::IsSet => {
            query.push(format!("({sql} IS NOT NULL)"));
            return;
        }
        Operator::IsNotSet => {
            query.push(format!("({sql} IS NULL)"));
            return;
        }
        _ => {}
    }
    match (&c.op, &c.operand) {
        (Operator::Contains, Operand::Text(t)) => {
            query
                .push(format!("({sql} ILIKE '%' || "))
                .push_bind(escape_like(t))
                .push(" || '%')");
        }
        (Operator::StartsWith, Operand::Text(t)) => {
            query
                .push(format!("({sql} ILIKE "))
                .push_bind(escape_like(t))
                .push(" || '%')");
        }
        (Operator::In, Operand::List(items)) => {
            query.push(format!("({sql} = ANY("));
            push_list(query, c.field, items);
            query.push("))");
        }
        (op, operand) => {
            let symbol = match op {
                Operator::Neq => "IS DISTINCT FROM",
                Operator::Gt => ">",
                Operator::Gte => ">=",
                Operator::Lt => "<",
                Operator::Lte => "<=",
                _ => "=",
            };
            query.push(format!("({sql} {symbol} "));
            push_operand(query, operand);
            query.push(")");
        }
    }
}

/// `%`, `_` and `\` in a LIKE pattern are literal.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_operand(query: &mut QueryBuilder<'_, Postgres>, operand: &Operand) {
    match operand {
        Operand::Id(id) => query.push_bind(*id),
        Operand::Text(t) => query.push_bind(t.clone()),
        Operand::Int(n) => query.push_bind(*n),
        Operand::Number(n) => query.push_bind(*n),
        Operand::Time(t) => query.push_bind(*t),
        Operand::Date(d) => query.push_bind(*d),
        Operand::None | Operand::List(_) => query.push("NULL"),
    };
}

/// A list operand as one bound array: the values as text, cast to the
/// field's type in SQL (the cast names a type of this crate, never input).
fn push_list(query: &mut QueryBuilder<'_, Postgres>, field: &Field, items: &[Operand]) {
    let texts: Vec<String> = items
        .iter()
        .map(|o| match o {
            Operand::Id(id) => id.to_string(),
            Operand::Text(t) => t.clone(),
            Operand::Int(n) => n.to_string(),
            Operand::Number(n) => n.to_string(),
            Operand::Time(t) => t.to_rfc3339(),
            Operand::Date(d) => d.to_string(),
            Operand::None | Operand::List(_) => String::new(),
        })
        .collect();
    let cast = match field.r#type {
        FieldType::Id => "uuid[]",
        FieldType::Enum(_) => "smallint[]",
        FieldType::Number | FieldType::Amount => "numeric[]",
        FieldType::Time => "timestamptz[]",
        FieldType::Date => "date[]",
        FieldType::Text => "text[]",
    };
    query.push_bind(texts).push(format!("::{cast}"));
}

/// The SQL of a plan: `SELECT <dimensions>, <measures> FROM <table> WHERE
/// <tenant> AND <visibility> AND <filter> GROUP BY ... ORDER BY ... LIMIT
/// <limit + 1>`.
pub fn compile<'a>(
    plan: &Plan,
    tenant: Uuid,
    scope: &Scope,
    currency: &str,
) -> QueryBuilder<'a, Postgres> {
    let mut query = QueryBuilder::new("SELECT ");
    let mut first = true;
    for d in &plan.dimensions {
        if !first {
            query.push(", ");
        }
        first = false;
        push_dimension(&mut query, d);
    }
    for m in &plan.measures {
        if !first {
            query.push(", ");
        }
        first = false;
        push_measure(&mut query, m, currency);
    }
    query
        .push(format!(" FROM {} WHERE tenant_id = ", plan.dataset.table))
        .push_bind(tenant);
    if plan.dataset.scoped {
        scope.push_sql(&mut query);
    }
    if let Some(filter) = &plan.filter {
        query.push(" AND ");
        filter.push_sql(&mut query, &push_comparison);
    }
    let dimensions = plan.dimensions.len();
    if dimensions > 0 {
        let positions: Vec<String> = (1..=dimensions).map(|i| i.to_string()).collect();
        query.push(format!(" GROUP BY {}", positions.join(", ")));
    }
    let sort: Vec<(usize, bool)> = if plan.sort.is_empty() {
        (0..dimensions).map(|i| (i, false)).collect()
    } else {
        plan.sort.clone()
    };
    if !sort.is_empty() {
        let order: Vec<String> = sort
            .iter()
            .map(|(column, descending)| {
                let direction = if *descending { "DESC" } else { "ASC" };
                format!("{} {direction} NULLS LAST", column + 1)
            })
            .collect();
        query.push(format!(" ORDER BY {}", order.join(", ")));
    }
    query.push(" LIMIT ").push_bind(plan.limit + 1);
    query
}

fn decode(row: &PgRow, i: usize, kind: Kind) -> sqlx::Result<Value> {
    Ok(match kind {
        Kind::Text => row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::None, Value::Text),
        Kind::Enum => row
            .try_get::<Option<i16>, _>(i)?
            .map_or(Value::None, Value::Enum),
        Kind::Int => row
            .try_get::<Option<i64>, _>(i)?
            .map_or(Value::None, Value::Int),
        Kind::Number => row
            .try_get::<Option<Decimal>, _>(i)?
            .map_or(Value::None, Value::Number),
        Kind::Time => row
            .try_get::<Option<DateTime<Utc>>, _>(i)?
            .map_or(Value::None, Value::Time),
        Kind::Date => row
            .try_get::<Option<NaiveDate>, _>(i)?
            .map_or(Value::None, Value::Date),
    })
}

/// How a column's values are read back.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Enum,
    Int,
    Number,
    Time,
    Date,
}

fn kinds(plan: &Plan) -> Vec<Kind> {
    let dimensions = plan
        .dimensions
        .iter()
        .map(|d| match (d.bucket, d.field.r#type) {
            (None, FieldType::Enum(_)) => Kind::Enum,
            _ => Kind::Text,
        });
    let measures = plan
        .measures
        .iter()
        .map(|m| match (m.aggregate, m.field.map(|f| f.r#type)) {
            (Aggregate::Count | Aggregate::DistinctCount, _) => Kind::Int,
            (_, Some(FieldType::Time)) => Kind::Time,
            (_, Some(FieldType::Date)) => Kind::Date,
            _ => Kind::Number,
        });
    dimensions.chain(measures).collect()
}

/// Runs a plan inside the caller's tenant transaction, bounded by
/// [`STATEMENT_TIMEOUT`].
pub async fn compute(
    tx: &mut PgConnection,
    plan: &Plan,
    tenant: Uuid,
    scope: &Scope,
    currency: &str,
) -> sqlx::Result<Computed> {
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    let mut query = compile(plan, tenant, scope, currency);
    let rows = query.build().fetch_all(&mut *tx).await?;
    let kinds = kinds(plan);
    let truncated = rows.len() as i64 > plan.limit;
    let rows = rows
        .iter()
        .take(plan.limit as usize)
        .map(|row| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| decode(row, i, *kind))
                .collect::<sqlx::Result<Vec<_>>>()
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Computed { rows, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::check;
    use crm_proto::crm::customers::v1::{filter, Condition, Filter};
    use crm_proto::crm::reporting::v1::{GroupBy, Measure, ReportDefinition};

    #[test]
    fn a_plan_compiles_to_sql_with_every_value_bound() {
        let definition = ReportDefinition {
            dataset: "deals".into(),
            group_by: vec![GroupBy {
                field: "closed_at".into(),
                bucket: DateBucket::Month as i32,
            }],
            measures: vec![Measure {
                aggregate: Aggregate::Sum as i32,
                field: "amount".into(),
            }],
            filter: Some(Filter {
                node: Some(filter::Node::Condition(Condition {
                    field: "lost_reason".into(),
                    op: Operator::Contains as i32,
                    value: Some(prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(
                            "'; DROP TABLE deals; --".into(),
                        )),
                    }),
                })),
            }),
            ..Default::default()
        };
        let plan = check(&definition, "definition").expect("a plan");
        let scope = Scope::Own {
            user: Some(Uuid::nil()),
        };
        let query = compile(&plan, Uuid::nil(), &scope, "EUR");
        assert_eq!(
            query.sql(),
            "SELECT to_char(date_trunc('month', closed_at AT TIME ZONE 'UTC'), 'YYYY-MM'), \
             sum(amount) FILTER (WHERE currency = $1) FROM deals WHERE tenant_id = $2 AND (owner_id = $3) \
             AND (lost_reason ILIKE '%' || $4 || '%') GROUP BY 1 ORDER BY 1 ASC NULLS LAST LIMIT $5"
        );
    }
}

// ---- schedules ----

/// A report's schedule as stored, with the visibility it runs with.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ScheduleRow {
    pub report_id: Uuid,
    pub frequency: i16,
    pub hour: i16,
    pub day: i16,
    pub recipients: Vec<String>,
    pub scope_user: Option<Uuid>,
    pub scope_teams: Vec<Uuid>,
    pub visibility: i16,
    pub next_run_at: DateTime<Utc>,
}

impl ScheduleRow {
    /// The visibility the schedule runs with.
    pub fn scope(&self) -> Scope {
        match self.visibility {
            3 => Scope::Tenant,
            2 => Scope::Team {
                user: self.scope_user,
                teams: self.scope_teams.clone(),
            },
            _ => Scope::Own {
                user: self.scope_user,
            },
        }
    }
}

/// A scope as stored with a schedule: (visibility, user, teams).
pub fn stored_scope(scope: &Scope) -> (i16, Option<Uuid>, Vec<Uuid>) {
    match scope {
        Scope::Tenant => (3, None, Vec::new()),
        Scope::Team { user, teams } => (2, *user, teams.clone()),
        Scope::Own { user } => (1, *user, Vec::new()),
    }
}

const SCHEDULE_COLUMNS: &str =
    "report_id, frequency, hour, day, recipients, scope_user, scope_teams, visibility, next_run_at";

pub struct NewSchedule<'a> {
    pub report: Uuid,
    pub schedule: &'a crate::domain::schedule::Schedule,
    pub scope: &'a Scope,
    pub next_run_at: DateTime<Utc>,
}

/// Sets (or replaces) a report's schedule and when it is due.
pub async fn set_schedule(
    tx: &mut PgConnection,
    tenant: Uuid,
    s: &NewSchedule<'_>,
) -> sqlx::Result<()> {
    let (visibility, user, teams) = stored_scope(s.scope);
    sqlx::query(
        "INSERT INTO report_schedules (tenant_id, report_id, frequency, hour, day, recipients, scope_user, scope_teams, visibility, next_run_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, report_id) DO UPDATE SET \
         frequency = EXCLUDED.frequency, hour = EXCLUDED.hour, day = EXCLUDED.day, recipients = EXCLUDED.recipients, \
         scope_user = EXCLUDED.scope_user, scope_teams = EXCLUDED.scope_teams, visibility = EXCLUDED.visibility, \
         next_run_at = EXCLUDED.next_run_at",
    )
    .bind(tenant)
    .bind(s.report)
    .bind(s.schedule.frequency as i16)
    .bind(s.schedule.hour as i16)
    .bind(s.schedule.day as i16)
    .bind(&s.schedule.recipients)
    .bind(user)
    .bind(&teams)
    .bind(visibility)
    .bind(s.next_run_at)
    .execute(&mut *tx)
    .await?;
    due(tx, tenant, s.report, s.next_run_at).await
}

async fn due(
    tx: &mut PgConnection,
    tenant: Uuid,
    report: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO report_schedule_due (tenant_id, report_id, due_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, report_id) DO UPDATE SET due_at = EXCLUDED.due_at",
    )
    .bind(tenant)
    .bind(report)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Removes a report's schedule (and its due row).
pub async fn clear_schedule(tx: &mut PgConnection, tenant: Uuid, report: Uuid) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM report_schedules WHERE tenant_id = $1 AND report_id = $2",
        "DELETE FROM report_schedule_due WHERE tenant_id = $1 AND report_id = $2",
    ] {
        sqlx::query(statement)
            .bind(tenant)
            .bind(report)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The schedules of these reports.
pub async fn schedules(
    tx: &mut PgConnection,
    tenant: Uuid,
    reports: &[Uuid],
) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE tenant_id = $1 AND report_id = ANY($2)"
    ))
    .bind(tenant)
    .bind(reports)
    .fetch_all(tx)
    .await
}

/// Up to `limit` schedules due at `now`, any tenant, locked for this
/// transaction (`SKIP LOCKED`: one pod runs each).
pub async fn lock_due_schedules(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, report_id FROM report_schedule_due WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// A report by id whoever sees it (the schedule's run).
pub async fn report_by_id(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<SavedReport>> {
    sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM reports WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// The schedule ran (or will retry): next time it is due.
pub async fn schedule_next(
    tx: &mut PgConnection,
    tenant: Uuid,
    report: Uuid,
    next: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE report_schedules SET next_run_at = $3 WHERE tenant_id = $1 AND report_id = $2",
    )
    .bind(tenant)
    .bind(report)
    .bind(next)
    .execute(&mut *tx)
    .await?;
    due(tx, tenant, report, next).await
}
