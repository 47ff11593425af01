//! Scheduled reports: a scan takes the schedules that are due (rows of
//! `report_schedule_due` locked with `SKIP LOCKED`, so each run happens on
//! one pod), computes the report with the visibility stored with its
//! schedule, mails it as CSV with its SVG chart through the SMTP relay, and
//! publishes `report.scheduled_sent`, in the transaction that moves the
//! schedule to its next run. A relay that refuses for now is tried again
//! in five minutes; a permanent refusal waits for the next run.

use std::sync::Arc;
use std::time::Duration;

use crm_proto::crm::reporting::v1::{Frequency, ReportDefinition, ReportScheduledSent};
use kit::auth::CallerContext;
use kit::clock::Clock;
use kit::db::{set_tenant, Database};
use kit::mail::Mailer;
use kit::outbox::Outbox;
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use prost::Message as _;
use uuid::Uuid;

use crate::domain::chart::{self, ChartKind};
use crate::domain::report;
use crate::domain::schedule::{next_run, Schedule};
use crate::grpc::reports::{chart_data, compute_in, csv_of};
use crate::store::reports as store;

/// Runs one step takes at most (each mails).
const STEP: i64 = 10;
/// When a relay refuses for now, the next try.
const RETRY: chrono::Duration = chrono::Duration::minutes(5);

pub struct ScheduleScan {
    pub db: Database,
    pub outbox: Outbox,
    pub mailer: Arc<Mailer>,
    pub from: Mailbox,
    pub clock: Clock,
    pub interval: Duration,
}

/// The mail of one run: a short text, the CSV and the chart.
fn mail(
    from: &Mailbox,
    to: &[String],
    name: &str,
    rows: usize,
    csv: Vec<u8>,
    svg: String,
) -> anyhow::Result<Message> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(format!("Report: {name}"));
    for address in to {
        builder = builder.to(address.parse()?);
    }
    let text =
        format!("Your scheduled report \"{name}\": {rows} rows, attached as CSV with its chart.\n");
    Ok(builder.multipart(
        MultiPart::mixed()
            .singlepart(SinglePart::plain(text))
            .singlepart(
                Attachment::new("report.csv".into()).body(csv, ContentType::parse("text/csv")?),
            )
            .singlepart(
                Attachment::new("chart.svg".into()).body(svg, ContentType::parse("image/svg+xml")?),
            ),
    )?)
}

impl ScheduleScan {
    /// One due schedule: mailed, then moved on. Answers when it is next due.
    async fn run(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        report_id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let (Some(saved), Some(row)) = (
            store::report_by_id(tx, tenant, report_id).await?,
            store::schedules(tx, tenant, &[report_id]).await?.pop(),
        ) else {
            store::clear_schedule(tx, tenant, report_id).await?;
            return Ok(None);
        };
        let schedule = Schedule {
            frequency: Frequency::try_from(i32::from(row.frequency)).unwrap_or(Frequency::Daily),
            hour: row.hour as u32,
            day: row.day as u32,
            recipients: row.recipients.clone(),
        };
        let next = next_run(&schedule, now);
        let definition = ReportDefinition::decode(saved.definition.as_slice())?;
        let plan = report::check(&definition, "report.definition")
            .map_err(|e| anyhow::anyhow!("the saved definition no longer checks: {e}"))?;
        let computed = compute_in(tx, plan, tenant, &row.scope())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let csv = csv_of(&computed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let kind = ChartKind::parse(&saved.chart).unwrap_or(ChartKind::Bar);
        let svg =
            chart::render(kind, &chart_data(&saved.name, &computed)).map_err(anyhow::Error::msg)?;
        let rows = computed.rows.len();
        let message = mail(
            &self.from,
            &schedule.recipients,
            &saved.name,
            rows,
            csv,
            svg,
        )?;
        match self.mailer.send(message).await {
            Ok(()) => {
                let event = ReportScheduledSent {
                    report_id: report_id.to_string(),
                    recipients: schedule.recipients.len() as i32,
                    rows: rows as i64,
                    sent_at: Some(kit::time::to_timestamp(now)),
                };
                let caller = CallerContext::system("reporting", tenant);
                self.outbox
                    .enqueue(tx, &caller, report_id, now.timestamp(), &event)
                    .await?;
                Ok(Some(next))
            }
            Err(refused) if !refused.permanent => {
                tracing::warn!(report = %report_id, reason = %refused.reason, "scheduled report not sent; retrying");
                Ok(Some(now + RETRY))
            }
            Err(refused) => {
                tracing::warn!(report = %report_id, reason = %refused.reason, "scheduled report refused");
                Ok(Some(next))
            }
        }
    }
}

impl kit::scan::Scan for ScheduleScan {
    const NAME: &'static str = "scheduled reports";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut tx = self.db.pool().begin().await?;
        let due = store::lock_due_schedules(&mut tx, now, STEP).await?;
        for (tenant, report) in &due {
            set_tenant(&mut tx, *tenant).await?;
            match self.run(&mut tx, *tenant, *report, now).await {
                Ok(Some(next)) => store::schedule_next(&mut tx, *tenant, *report, next).await?,
                Ok(None) => {}
                Err(error) => {
                    // A report that cannot run is tried at its next time.
                    tracing::warn!(report = %report, error = format!("{error:#}"), "scheduled report failed");
                    let retry = now + RETRY;
                    store::schedule_next(&mut tx, *tenant, *report, retry).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
