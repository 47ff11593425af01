//! ReportService: saved reports and report dashboards (who sees and changes
//! them), reports computed over what the caller may see, as JSON, CSV and
//! SVG charts.

use std::pin::Pin;

use crm_proto::crm::reporting::v1::report_service_server::ReportService;
use crm_proto::crm::reporting::v1::*;
use futures::Stream;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::input::{optional_id, parse_id};
use kit::rpc::{audit, check_version};
use kit::time::to_optional_timestamp;
use kit::Error;
use prost::Message;
use rust_decimal::prelude::ToPrimitive;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{handle, SharedState, State};
use crate::domain::access::{authorize_read, authorize_write, scope};
use crate::domain::chart::{self, ChartData, ChartKind};
use crate::domain::money;
use crate::domain::report::{self, FieldType, Plan, DATASETS};
use crate::domain::schedule::{self, next_run, Schedule};
use crate::store::freshness;
use crate::store::reports::{self as store, DashboardRow, SavedReport, Value, Viewer};

pub struct ReportHandlers(pub SharedState);

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

kit::field_mask!(
    apply_report_mask,
    report_fields,
    Report,
    "report",
    [
        name,
        description,
        definition,
        sharing,
        team_id,
        chart,
        schedule
    ]
);
kit::field_mask!(
    apply_dashboard_mask,
    dashboard_fields,
    ReportDashboard,
    "dashboard",
    [name, report_ids, sharing, team_id]
);

/// CSV is sent in chunks of about this many bytes.
const CHUNK: usize = 64 * 1024;
/// The most reports one dashboard holds.
const MAX_DASHBOARD_REPORTS: usize = 24;

fn viewer(caller: &CallerContext) -> Viewer<'_> {
    Viewer {
        user: caller.user_id,
        teams: &caller.teams,
        admin: caller.has_role(Role::Admin),
    }
}

/// A saved report the caller sees, locked for change when `lock`.
async fn report_seen(
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<SavedReport> {
    store::find_report(tx, caller.tenant_id, &viewer(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("report", id))
}

/// A report dashboard the caller sees, locked for change when `lock`.
async fn dashboard_seen(
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<DashboardRow> {
    store::find_dashboard(tx, caller.tenant_id, &viewer(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("report dashboard", id))
}

/// Its owner changes a saved report or dashboard; so does a manager or
/// admin who sees it.
fn may_change(caller: &CallerContext, owner: Option<Uuid>) -> Result<(), Error> {
    if owner.is_some() && owner == caller.user_id {
        return Ok(());
    }
    if caller.has_role(Role::Admin) || caller.has_role(Role::Manager) {
        return Ok(());
    }
    Err(Error::PermissionDenied(
        "only its owner, a manager or an admin changes it".into(),
    ))
}

fn sharing_of(raw: i32, team: Option<Uuid>, v: &mut Violations) -> i16 {
    match Sharing::try_from(raw) {
        Ok(Sharing::Unspecified) => Sharing::Private as i16,
        Ok(Sharing::Team) if team.is_none() => {
            v.add("team_id", "sharing with a team needs the team");
            Sharing::Team as i16
        }
        Ok(sharing) => sharing as i16,
        Err(_) => {
            v.add("sharing", "is not a known sharing");
            Sharing::Private as i16
        }
    }
}

/// A report's fields checked; the definition checked into a plan.
struct Checked {
    name: String,
    description: String,
    definition: Vec<u8>,
    sharing: i16,
    team: Option<Uuid>,
    chart: String,
    schedule: Option<Schedule>,
}

fn check_report(r: &Report, caller: &CallerContext, mails: bool) -> Result<Checked, Error> {
    let mut v = Violations::new();
    let schedule = match &r.schedule {
        Some(_) if !mails => {
            return Err(Error::FailedPrecondition(
                "scheduled reports need a mail relay (REPORTING_SMTP_URL)".into(),
            ))
        }
        Some(s) => schedule::check(s, "report.schedule", &mut v),
        None => None,
    };
    let name = r.name.trim().to_owned();
    if name.is_empty() {
        v.add("report.name", "is required");
    } else if name.chars().count() > 200 {
        v.add("report.name", "is longer than 200 characters");
    }
    if r.description.chars().count() > 2000 {
        v.add("report.description", "is longer than 2,000 characters");
    }
    let team = v
        .check(optional_id("report.team_id", &r.team_id))
        .flatten()
        .or_else(|| caller.teams.first().copied());
    let sharing = sharing_of(r.sharing, team, &mut v);
    if sharing == Sharing::Team as i16
        && team.is_some_and(|t| !caller.teams.contains(&t))
        && !caller.has_role(Role::Admin)
    {
        v.add("report.team_id", "must be one of your teams");
    }
    let chart = r.chart.trim().to_ascii_lowercase();
    if ChartKind::parse(&chart).is_none() {
        v.add("report.chart", "must be bar, line, pie or funnel");
    }
    let definition = r.definition.clone().unwrap_or_default();
    match report::check(&definition, "report.definition") {
        Ok(_) => {}
        Err(Error::InvalidArgument(list)) => {
            for violation in list {
                v.add(violation.field, violation.description);
            }
        }
        Err(other) => return Err(other),
    }
    v.into_result()?;
    Ok(Checked {
        name,
        description: r.description.trim().to_owned(),
        definition: definition.encode_to_vec(),
        sharing,
        team,
        chart: if chart.is_empty() {
            "bar".into()
        } else {
            chart
        },
        schedule,
    })
}

fn schedule_of(row: &store::ScheduleRow) -> ReportSchedule {
    ReportSchedule {
        frequency: i32::from(row.frequency),
        hour: i32::from(row.hour),
        day: i32::from(row.day),
        recipients: row.recipients.clone(),
        next_run_at: to_optional_timestamp(Some(row.next_run_at)),
    }
}

fn report_of(row: SavedReport, schedule: Option<ReportSchedule>) -> Report {
    Report {
        schedule,
        id: row.id.to_string(),
        name: row.name,
        description: row.description,
        definition: ReportDefinition::decode(row.definition.as_slice()).ok(),
        sharing: i32::from(row.sharing),
        owner_id: row.owner_id.map(|o| o.to_string()).unwrap_or_default(),
        team_id: row.team_id.map(|t| t.to_string()).unwrap_or_default(),
        chart: row.chart,
        audit: audit(
            row.created_at,
            row.created_by,
            row.updated_at,
            row.updated_by,
            row.version,
        ),
    }
}

fn dashboard_of(row: DashboardRow) -> ReportDashboard {
    ReportDashboard {
        id: row.id.to_string(),
        name: row.name,
        report_ids: row.report_ids.iter().map(Uuid::to_string).collect(),
        sharing: i32::from(row.sharing),
        owner_id: row.owner_id.map(|o| o.to_string()).unwrap_or_default(),
        team_id: row.team_id.map(|t| t.to_string()).unwrap_or_default(),
        audit: audit(
            row.created_at,
            row.created_by,
            row.updated_at,
            row.updated_by,
            row.version,
        ),
    }
}

/// A computed result with its plan, for JSON, CSV and charts.
pub(crate) struct Computed {
    plan: Plan,
    pub(crate) rows: Vec<Vec<Value>>,
    truncated: bool,
    currency: String,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
}

impl State {
    /// The report as answered, with its schedule.
    async fn answer(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        row: SavedReport,
    ) -> kit::Result<Report> {
        let schedule = store::schedules(tx, tenant, &[row.id])
            .await?
            .first()
            .map(schedule_of);
        Ok(report_of(row, schedule))
    }

    /// Sets or removes a report's schedule, with the caller's visibility.
    async fn schedule(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &CallerContext,
        report: Uuid,
        checked: &Option<Schedule>,
    ) -> kit::Result<()> {
        match checked {
            Some(s) => {
                let next = store::NewSchedule {
                    report,
                    schedule: s,
                    scope: &scope(caller),
                    next_run_at: next_run(s, self.clock.now()),
                };
                store::set_schedule(tx, caller.tenant_id, &next).await?
            }
            None => store::clear_schedule(tx, caller.tenant_id, report).await?,
        }
        Ok(())
    }

    /// A saved report the caller may see.
    async fn visible_report(&self, caller: &CallerContext, id: Uuid) -> kit::Result<SavedReport> {
        let mut tx = self.begin(caller).await?;
        report_seen(&mut tx, caller, id, false).await
    }

    /// Computes a definition over the records the caller may see.
    async fn compute(
        &self,
        caller: &CallerContext,
        definition: &ReportDefinition,
        path: &str,
    ) -> kit::Result<Computed> {
        let plan = report::check(definition, path)?;
        let mut tx = self.snapshot(caller).await?;
        compute_in(&mut tx, plan, caller.tenant_id, &scope(caller)).await
    }
}

/// Computes a checked plan in an open tenant transaction, over `scope`.
pub(crate) async fn compute_in(
    tx: &mut sqlx::PgConnection,
    plan: Plan,
    tenant: Uuid,
    scope: &kit::access::Scope,
) -> kit::Result<Computed> {
    let currency = match &plan.currency {
        Some(asked) => asked.clone(),
        None => store::usual_currency(tx, tenant, &plan)
            .await?
            .unwrap_or_default(),
    };
    let computed = store::compute(tx, &plan, tenant, scope, &currency)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                Error::Unavailable("the report took too long; narrow it with a filter".into())
            }
            _ => Error::from(e),
        })?;
    let as_of = freshness::as_of(tx, tenant, plan.dataset.domain).await?;
    Ok(Computed {
        plan,
        rows: computed.rows,
        truncated: computed.truncated,
        currency,
        as_of,
    })
}

fn column_type(plan: &Plan, i: usize) -> &'static str {
    let dimensions = plan.dimensions.len();
    if let Some(d) = plan.dimensions.get(i) {
        return if d.bucket.is_some() {
            "bucket"
        } else {
            d.field.r#type.name()
        };
    }
    let m = &plan.measures[i - dimensions];
    match (m.aggregate, m.field.map(|f| f.r#type)) {
        (Aggregate::Count | Aggregate::DistinctCount, _) => "number",
        (_, Some(t)) => t.name(),
        _ => "number",
    }
}

/// A value as the answer shows it.
fn shown(plan: &Plan, column: usize, value: &Value) -> String {
    match value {
        Value::None => String::new(),
        Value::Text(t) => t.clone(),
        Value::Enum(n) => match plan.dimensions.get(column).map(|d| d.field.r#type) {
            Some(FieldType::Enum(e)) => e.key(i32::from(*n)),
            _ => n.to_string(),
        },
        Value::Int(n) => n.to_string(),
        Value::Number(n) if column_type(plan, column) == "amount" => money(*n),
        Value::Number(n) => n.normalize().to_string(),
        Value::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Value::Date(d) => d.to_string(),
    }
}

fn columns(plan: &Plan) -> Vec<ReportColumn> {
    let names = plan
        .dimensions
        .iter()
        .map(|d| (d.name().to_owned(), "dimension"))
        .chain(plan.measures.iter().map(|m| (m.name.clone(), "measure")));
    names
        .enumerate()
        .map(|(i, (name, role))| ReportColumn {
            name,
            role: role.into(),
            r#type: column_type(plan, i).into(),
        })
        .collect()
}

fn result_of(c: &Computed) -> ReportResult {
    ReportResult {
        columns: columns(&c.plan),
        rows: c
            .rows
            .iter()
            .map(|row| ReportRow {
                values: row
                    .iter()
                    .enumerate()
                    .map(|(i, v)| shown(&c.plan, i, v))
                    .collect(),
            })
            .collect(),
        truncated: c.truncated,
        currency: if c.plan.measures.iter().any(|m| m.is_amount()) {
            c.currency.clone()
        } else {
            String::new()
        },
        as_of: to_optional_timestamp(c.as_of),
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Int(n) => *n as f64,
        Value::Number(n) => n.to_f64().unwrap_or_default(),
        _ => 0.0,
    }
}

/// What a chart draws: the first measure over the first dimension, one
/// series per value of the second dimension when there is one.
pub(crate) fn chart_data(title: &str, c: &Computed) -> ChartData {
    let plan = &c.plan;
    let dimensions = plan.dimensions.len();
    let label = |row: &Vec<Value>, i: usize| shown(plan, i, &row[i]);
    let mut categories: Vec<String> = Vec::new();
    for row in &c.rows {
        let category = if dimensions == 0 {
            "total".to_owned()
        } else {
            label(row, 0)
        };
        if !categories.contains(&category) {
            categories.push(category);
        }
    }
    let unit = |i: usize| {
        let m = &plan.measures[i];
        if m.is_amount() {
            format!("{} ({})", m.name, c.currency)
        } else {
            m.name.clone()
        }
    };
    let series: Vec<(String, Vec<f64>)> = if dimensions == 2 {
        let mut names: Vec<String> = Vec::new();
        for row in &c.rows {
            let name = label(row, 1);
            if !names.contains(&name) && names.len() < 8 {
                names.push(name);
            }
        }
        names
            .into_iter()
            .map(|name| {
                let values = categories
                    .iter()
                    .map(|category| {
                        c.rows
                            .iter()
                            .find(|row| &label(row, 0) == category && label(row, 1) == name)
                            .map_or(0.0, |row| number(&row[2]))
                    })
                    .collect();
                (name, values)
            })
            .collect()
    } else {
        // The first measure only: one unit on the axis (the table shows
        // every measure).
        let values = c.rows.iter().map(|row| number(&row[dimensions])).collect();
        vec![(plan.measures[0].name.clone(), values)]
    };
    ChartData {
        title: title.to_owned(),
        x_label: plan
            .dimensions
            .first()
            .map(|d| d.name().to_owned())
            .unwrap_or_default(),
        y_label: unit(0),
        categories,
        series,
    }
}

/// The result as CSV: a header of column names, a line per row.
pub(crate) fn csv_of(c: &Computed) -> kit::Result<Vec<u8>> {
    let result = result_of(c);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    let internal = |e: csv::Error| Error::Internal(e.into());
    writer.write_record(&header).map_err(internal)?;
    for row in &result.rows {
        writer.write_record(&row.values).map_err(internal)?;
    }
    writer
        .into_inner()
        .map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))
}

/// The ids of a dashboard's reports: each one the caller may see.
async fn check_report_ids(
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    ids: &[String],
) -> kit::Result<Vec<Uuid>> {
    if ids.len() > MAX_DASHBOARD_REPORTS {
        return Err(Error::invalid("dashboard.report_ids", "at most 24 reports"));
    }
    let mut checked = Vec::new();
    for (i, raw) in ids.iter().enumerate() {
        let field = format!("dashboard.report_ids[{i}]");
        let id = parse_id(&field, raw)?;
        if checked.contains(&id) {
            return Err(Error::invalid(field, "is listed twice"));
        }
        if report_seen(tx, caller, id, false).await.is_err() {
            return Err(Error::invalid(field, "is not a report you can see"));
        }
        checked.push(id);
    }
    Ok(checked)
}

/// A dashboard's name, team and sharing checked; a new one's team is the
/// caller's first when none is named.
fn check_dashboard(
    d: &ReportDashboard,
    caller: &CallerContext,
    new: bool,
) -> kit::Result<(String, Option<Uuid>, i16)> {
    let mut v = Violations::new();
    let name = d.name.trim();
    if name.is_empty() {
        v.add("dashboard.name", "is required");
    } else if name.chars().count() > 200 {
        v.add("dashboard.name", "is longer than 200 characters");
    }
    let team = v
        .check(optional_id("dashboard.team_id", &d.team_id))
        .flatten()
        .or_else(|| caller.teams.first().copied().filter(|_| new));
    let sharing = sharing_of(d.sharing, team, &mut v);
    v.into_result()?;
    Ok((name.to_owned(), team, sharing))
}

#[tonic::async_trait]
impl ReportService for ReportHandlers {
    type ExportReportStream = ResponseStream<ExportReportResponse>;

    async fn list_datasets(
        &self,
        request: Request<ListDatasetsRequest>,
    ) -> Result<Response<ListDatasetsResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize_read(&caller)?;
            Ok(ListDatasetsResponse {
                datasets: DATASETS
                    .iter()
                    .map(|d| Dataset {
                        name: d.name.into(),
                        fields: d
                            .fields
                            .iter()
                            .map(|f| DatasetField {
                                name: f.name.into(),
                                r#type: f.r#type.name().into(),
                                values: match f.r#type {
                                    FieldType::Enum(e) => {
                                        e.values().into_iter().map(|(n, _)| n).collect()
                                    }
                                    _ => Vec::new(),
                                },
                            })
                            .collect(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn compute_report(
        &self,
        request: Request<ComputeReportRequest>,
    ) -> Result<Response<ComputeReportResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_read(&caller)?;
            let (definition, path) = match (request.report_id.is_empty(), request.definition) {
                (true, Some(definition)) => (definition, "definition"),
                (false, None) => {
                    let id = parse_id("report_id", &request.report_id)?;
                    let saved = self.0.visible_report(&caller, id).await?;
                    let definition = ReportDefinition::decode(saved.definition.as_slice())
                        .map_err(|e| Error::Internal(e.into()))?;
                    (definition, "report.definition")
                }
                _ => {
                    return Err(Error::invalid(
                        "report_id",
                        "name a saved report or give a definition, not both",
                    ))
                }
            };
            let computed = self.0.compute(&caller, &definition, path).await?;
            Ok(ComputeReportResponse {
                result: Some(result_of(&computed)),
            })
        })
        .await
    }

    async fn create_report(
        &self,
        request: Request<CreateReportRequest>,
    ) -> Result<Response<CreateReportResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateReportRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let report = request
                .report
                .ok_or_else(|| Error::invalid("report", "is required"))?;
            let checked = check_report(&report, &caller, self.0.mails_reports)?;
            let mut tx = self.0.begin(&caller).await?;
            let tenant = caller.tenant_id;
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "report",
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let row = report_seen(&mut tx, &caller, existing, false).await?;
                return Ok(CreateReportResponse {
                    report: Some(self.0.answer(&mut tx, tenant, row).await?),
                });
            }
            let id = Uuid::now_v7();
            let row = store::insert_report(
                &mut tx,
                tenant,
                &store::NewReport {
                    id,
                    name: &checked.name,
                    description: &checked.description,
                    definition: checked.definition,
                    sharing: checked.sharing,
                    owner: caller.user_id,
                    team: checked.team,
                    chart: &checked.chart,
                    by: &caller.subject,
                },
            )
            .await?;
            self.0
                .schedule(&mut tx, &caller, id, &checked.schedule)
                .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "report",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            let report = self.0.answer(&mut tx, tenant, row).await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(CreateReportResponse {
                report: Some(report),
            })
        })
        .await
    }

    async fn get_report(
        &self,
        request: Request<GetReportRequest>,
    ) -> Result<Response<GetReportResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_read(&caller)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let row = report_seen(&mut tx, &caller, id, false).await?;
            Ok(GetReportResponse {
                report: Some(self.0.answer(&mut tx, caller.tenant_id, row).await?),
            })
        })
        .await
    }

    async fn list_reports(
        &self,
        request: Request<ListReportsRequest>,
    ) -> Result<Response<ListReportsResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize_read(&caller)?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_reports(&mut tx, caller.tenant_id, &viewer(&caller)).await?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let schedules = store::schedules(&mut tx, caller.tenant_id, &ids).await?;
            Ok(ListReportsResponse {
                reports: rows
                    .into_iter()
                    .map(|row| {
                        let schedule = schedules
                            .iter()
                            .find(|s| s.report_id == row.id)
                            .map(schedule_of);
                        report_of(row, schedule)
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn update_report(
        &self,
        request: Request<UpdateReportRequest>,
    ) -> Result<Response<UpdateReportResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let input = request
                .report
                .ok_or_else(|| Error::invalid("report", "is required"))?;
            let id = parse_id("report.id", &input.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let row = report_seen(&mut tx, &caller, id, true).await?;
            may_change(&caller, row.owner_id)?;
            check_version("report", &input.id, request.expected_version, row.version)?;
            let owner = row.owner_id;
            let mut report = self.0.answer(&mut tx, tenant, row).await?;
            apply_report_mask(&mut report, input, &paths, "update_mask")?;
            let checked = check_report(&report, &caller, self.0.mails_reports)?;
            let saved = store::update_report(
                &mut tx,
                tenant,
                &store::NewReport {
                    id,
                    name: &checked.name,
                    description: &checked.description,
                    definition: checked.definition,
                    sharing: checked.sharing,
                    owner,
                    team: checked.team,
                    chart: &checked.chart,
                    by: &caller.subject,
                },
            )
            .await?;
            if paths.is_empty() || paths.iter().any(|p| p == "schedule") {
                self.0
                    .schedule(&mut tx, &caller, id, &checked.schedule)
                    .await?;
            }
            let report = self.0.answer(&mut tx, tenant, saved).await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(UpdateReportResponse {
                report: Some(report),
            })
        })
        .await
    }

    async fn delete_report(
        &self,
        request: Request<DeleteReportRequest>,
    ) -> Result<Response<DeleteReportResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let row = report_seen(&mut tx, &caller, id, true).await?;
            may_change(&caller, row.owner_id)?;
            store::delete(&mut tx, "reports", caller.tenant_id, id).await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(DeleteReportResponse {})
        })
        .await
    }

    async fn get_report_chart(
        &self,
        request: Request<GetReportChartRequest>,
    ) -> Result<Response<GetReportChartResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_read(&caller)?;
            let id = parse_id("id", &request.id)?;
            let saved = self.0.visible_report(&caller, id).await?;
            let definition = ReportDefinition::decode(saved.definition.as_slice())
                .map_err(|e| Error::Internal(e.into()))?;
            let computed = self
                .0
                .compute(&caller, &definition, "report.definition")
                .await?;
            let kind = ChartKind::parse(&saved.chart).unwrap_or(ChartKind::Bar);
            let svg = chart::render(kind, &chart_data(&saved.name, &computed))
                .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
            Ok(GetReportChartResponse {
                svg,
                result: Some(result_of(&computed)),
            })
        })
        .await
    }

    async fn export_report(
        &self,
        request: Request<ExportReportRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let caller = kit::auth::caller(&request)?;
        let request = request.into_inner();
        let csv = async {
            authorize_read(&caller)?;
            let id = parse_id("id", &request.id)?;
            let saved = self.0.visible_report(&caller, id).await?;
            let definition = ReportDefinition::decode(saved.definition.as_slice())
                .map_err(|e| Error::Internal(e.into()))?;
            let computed = self
                .0
                .compute(&caller, &definition, "report.definition")
                .await?;
            csv_of(&computed)
        }
        .await
        .map_err(Status::from)?;
        let chunks: Vec<Result<ExportReportResponse, Status>> = csv
            .chunks(CHUNK)
            .map(|chunk| {
                Ok(ExportReportResponse {
                    chunk: chunk.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn create_report_dashboard(
        &self,
        request: Request<CreateReportDashboardRequest>,
    ) -> Result<Response<CreateReportDashboardResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateReportDashboardRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let d = request
                .dashboard
                .ok_or_else(|| Error::invalid("dashboard", "is required"))?;
            let (name, team, sharing) = check_dashboard(&d, &caller, true)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let reports = check_report_ids(&mut tx, &caller, &d.report_ids).await?;
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "report_dashboard",
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let row = dashboard_seen(&mut tx, &caller, existing, false).await?;
                return Ok(CreateReportDashboardResponse {
                    dashboard: Some(dashboard_of(row)),
                });
            }
            let id = Uuid::now_v7();
            let row = store::insert_dashboard(
                &mut tx,
                tenant,
                &store::NewDashboard {
                    id,
                    name: &name,
                    report_ids: &reports,
                    sharing,
                    owner: caller.user_id,
                    team,
                    by: &caller.subject,
                },
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "report_dashboard",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(CreateReportDashboardResponse {
                dashboard: Some(dashboard_of(row)),
            })
        })
        .await
    }

    async fn get_report_dashboard(
        &self,
        request: Request<GetReportDashboardRequest>,
    ) -> Result<Response<GetReportDashboardResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_read(&caller)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let row = dashboard_seen(&mut tx, &caller, id, false).await?;
            Ok(GetReportDashboardResponse {
                dashboard: Some(dashboard_of(row)),
            })
        })
        .await
    }

    async fn list_report_dashboards(
        &self,
        request: Request<ListReportDashboardsRequest>,
    ) -> Result<Response<ListReportDashboardsResponse>, Status> {
        handle(request, |caller, _| async move {
            authorize_read(&caller)?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_dashboards(&mut tx, caller.tenant_id, &viewer(&caller)).await?;
            Ok(ListReportDashboardsResponse {
                dashboards: rows.into_iter().map(dashboard_of).collect(),
            })
        })
        .await
    }

    async fn update_report_dashboard(
        &self,
        request: Request<UpdateReportDashboardRequest>,
    ) -> Result<Response<UpdateReportDashboardResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let input = request
                .dashboard
                .ok_or_else(|| Error::invalid("dashboard", "is required"))?;
            let id = parse_id("dashboard.id", &input.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let row = dashboard_seen(&mut tx, &caller, id, true).await?;
            may_change(&caller, row.owner_id)?;
            check_version(
                "report dashboard",
                &input.id,
                request.expected_version,
                row.version,
            )?;
            let owner = row.owner_id;
            let mut d = dashboard_of(row);
            apply_dashboard_mask(&mut d, input, &paths, "update_mask")?;
            let (name, team, sharing) = check_dashboard(&d, &caller, false)?;
            let reports = check_report_ids(&mut tx, &caller, &d.report_ids).await?;
            let saved = store::update_dashboard(
                &mut tx,
                tenant,
                &store::NewDashboard {
                    id,
                    name: &name,
                    report_ids: &reports,
                    sharing,
                    owner,
                    team,
                    by: &caller.subject,
                },
            )
            .await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(UpdateReportDashboardResponse {
                dashboard: Some(dashboard_of(saved)),
            })
        })
        .await
    }

    async fn delete_report_dashboard(
        &self,
        request: Request<DeleteReportDashboardRequest>,
    ) -> Result<Response<DeleteReportDashboardResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_write(&caller)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let row = dashboard_seen(&mut tx, &caller, id, true).await?;
            may_change(&caller, row.owner_id)?;
            store::delete(&mut tx, "report_dashboards", caller.tenant_id, id).await?;
            tx.commit().await.map_err(Error::from)?;
            Ok(DeleteReportDashboardResponse {})
        })
        .await
    }
}
