//! The sales dashboard reads rollups kept by triggers on `deals` (whole
//! days) and the deals themselves (the partial days at a period's ends).
//! Here a generated history of deals, written, updated and deleted in the
//! reporting database, is summed up in Rust and by the dashboard: the two
//! must agree for a period with partial days at both ends, for the admin
//! and for a rep; and the rollups kept statement by statement must equal
//! the rollups computed again from the deals.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, Utc};
use crm_proto::crm::reporting::v1::*;
use kit::auth::{Role, Visibility};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use crate::harness::TestApp;

#[derive(Clone, Debug)]
struct Deal {
    id: Uuid,
    owner: Uuid,
    team: Uuid,
    status: i16,
    amount: Decimal,
    currency: &'static str,
    probability: i32,
    created: DateTime<Utc>,
    closed: Option<DateTime<Utc>>,
    lost_reason: &'static str,
    /// The furthest open stage position entered (0..=2).
    furthest: Option<i32>,
    competitors: Vec<&'static str>,
    account: Option<Uuid>,
    /// A won deal's lines: product, total (in the deal's currency).
    lines: Vec<(Uuid, Decimal)>,
}

fn decimal(raw: &str) -> Decimal {
    Decimal::from_str(raw).expect("an amount")
}

/// Written with the columns the projection writes (a deal whole).
async fn write(pool: &sqlx::PgPool, tenant: Uuid, pipeline: Uuid, stages: &[Uuid], d: &Deal) {
    let stage = match d.status {
        2 => stages[3],
        3 => stages[4],
        _ => stages[d.furthest.unwrap_or(0) as usize],
    };
    sqlx::query(
        "INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, owner_id, team_id, status, amount, currency, probability, \
         lost_reason, created_at, closed_at, furthest, competitors, account_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET stage_id = EXCLUDED.stage_id, owner_id = EXCLUDED.owner_id, \
         team_id = EXCLUDED.team_id, status = EXCLUDED.status, amount = EXCLUDED.amount, currency = EXCLUDED.currency, \
         probability = EXCLUDED.probability, lost_reason = EXCLUDED.lost_reason, closed_at = EXCLUDED.closed_at, \
         furthest = EXCLUDED.furthest, competitors = EXCLUDED.competitors, account_id = EXCLUDED.account_id",
    )
    .bind(tenant)
    .bind(d.id)
    .bind(pipeline)
    .bind(stage)
    .bind(d.owner)
    .bind(d.team)
    .bind(d.status)
    .bind(d.amount)
    .bind(d.currency)
    .bind(d.probability)
    .bind(d.lost_reason)
    .bind(d.created)
    .bind(d.closed)
    .bind(d.furthest)
    .bind(&d.competitors)
    .bind(d.account)
    .execute(pool)
    .await
    .expect("deal written");
    // The lines as the projection writes them on a win: replaced.
    sqlx::query("DELETE FROM deal_lines WHERE tenant_id = $1 AND deal_id = $2")
        .bind(tenant)
        .bind(d.id)
        .execute(pool)
        .await
        .expect("lines deleted");
    for (line, (product, total)) in d.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deal_lines (tenant_id, deal_id, line, product_id, description, total, currency) \
             VALUES ($1, $2, $3, $4, 'Seat', $5, $6)",
        )
        .bind(tenant)
        .bind(d.id)
        .bind(line as i32)
        .bind(product)
        .bind(total)
        .bind(d.currency)
        .execute(pool)
        .await
        .expect("line");
    }
}

/// A rollup table, the columns compared (sums without their scale, which
/// depends on what was added) and the condition of a row that counts.
type Rollup = (&'static str, &'static str, &'static str);

const DEAL_ROLLUPS: [Rollup; 6] = [
    (
        "deal_open_totals",
        "pipeline_id, stage_id, owner_id, team_id, region, currency, close_month, deals, \
         trim_scale(amount), trim_scale(weighted)",
        "deals <> 0",
    ),
    (
        "deal_closed_days",
        "day, pipeline_id, owner_id, team_id, region, currency, status, campaign_id, lost_reason, deals, \
         trim_scale(amount), trim_scale(cycle_seconds)",
        "deals <> 0",
    ),
    (
        "deal_cohort_days",
        "day, pipeline_id, owner_id, team_id, region, furthest, status, won_stage_id, deals",
        "deals <> 0",
    ),
    (
        "deal_competitor_days",
        "day, pipeline_id, owner_id, team_id, region, status, competitor, deals",
        "deals <> 0",
    ),
    (
        "deal_account_days",
        "day, pipeline_id, owner_id, team_id, region, currency, account_id, deals, trim_scale(amount)",
        "deals <> 0",
    ),
    (
        "deal_product_days",
        "day, pipeline_id, owner_id, team_id, region, currency, product_id, description, lines, \
         trim_scale(amount)",
        "lines <> 0",
    ),
];

const TICKET_ROLLUPS: [Rollup; 3] = [
    (
        "ticket_created_days",
        "day, owner_id, team_id, channel, type, tickets",
        "tickets <> 0",
    ),
    (
        "ticket_solved_days",
        "day, owner_id, team_id, breached, tickets, csat_responses, csat_sum",
        "tickets <> 0 OR csat_responses <> 0",
    ),
    (
        "ticket_open_days",
        "day, owner_id, team_id, tickets",
        "tickets <> 0",
    ),
];

/// The rollups' rows that count something, in a comparable form.
async fn rollup_rows(pool: &sqlx::PgPool, tenant: Uuid, rollups: &[Rollup]) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, columns, counts) in rollups {
        let found: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT ROW({columns})::text FROM {table} WHERE tenant_id = $1 AND ({counts}) ORDER BY 1"
        ))
        .bind(tenant)
        .fetch_all(pool)
        .await
        .expect("rollup rows");
        rows.extend(found.into_iter().map(|(row,)| format!("{table} {row}")));
    }
    rows
}

/// What the triggers kept equals what `rebuild(tenant)` computes again
/// from the rows.
async fn kept_equals_rebuilt(pool: &sqlx::PgPool, tenant: Uuid, rollups: &[Rollup], rebuild: &str) {
    let kept = rollup_rows(pool, tenant, rollups).await;
    assert!(kept.len() > 50, "the rollups hold rows: {}", kept.len());
    sqlx::query(&format!("SELECT {rebuild}($1)"))
        .bind(tenant)
        .execute(pool)
        .await
        .expect("rebuilt");
    let rebuilt = rollup_rows(pool, tenant, rollups).await;
    let differing: Vec<&String> = kept
        .iter()
        .filter(|row| !rebuilt.contains(row))
        .chain(rebuilt.iter().filter(|row| !kept.contains(row)))
        .collect();
    assert!(
        differing.is_empty(),
        "kept and rebuilt differ: {differing:#?}"
    );
}

/// Deletes the rows of `table` with these ids (as the projection deletes).
async fn delete(pool: &sqlx::PgPool, table: &str, tenant: Uuid, ids: &[Uuid]) {
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND id = ANY($2)"
    ))
    .bind(tenant)
    .bind(ids)
    .execute(pool)
    .await
    .expect("deleted");
}

/// Partial days at both ends, whole days between; whole days only; within
/// one day.
fn periods(start: DateTime<Utc>, midnight: DateTime<Utc>) -> [(DateTime<Utc>, DateTime<Utc>); 3] {
    [
        (start + Duration::hours(30), midnight - Duration::hours(50)),
        (start + Duration::days(2), start + Duration::days(9)),
        (start + Duration::hours(80), start + Duration::hours(90)),
    ]
}

struct Expected {
    won: i64,
    lost: i64,
    won_amount: Decimal,
    open: i64,
    open_amount: Decimal,
    weighted: Decimal,
    leaderboard: BTreeMap<String, (i64, Decimal)>,
    lost_reasons: BTreeMap<String, i64>,
    /// Deals of the cohort that reached open stage 0, 1, 2, and won.
    reached: [i64; 4],
    /// Per competitor: won, lost.
    competitors: BTreeMap<String, (i64, i64)>,
    /// Won per account and per product: count, amount in euros.
    by_account: BTreeMap<String, (i64, Decimal)>,
    by_product: BTreeMap<String, (i64, Decimal)>,
}

fn expected(
    deals: &[Deal],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    owner: Option<Uuid>,
) -> Expected {
    let within = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= from && t < to);
    let seen: Vec<&Deal> = deals
        .iter()
        .filter(|d| owner.is_none_or(|o| d.owner == o))
        .collect();
    let eur = |d: &Deal| d.currency == "EUR";
    let won: Vec<&&Deal> = seen
        .iter()
        .filter(|d| d.status == 2 && within(d.closed))
        .collect();
    let open: Vec<&&Deal> = seen.iter().filter(|d| d.status == 1).collect();
    let mut leaderboard = BTreeMap::new();
    for d in &won {
        let entry = leaderboard
            .entry(d.owner.to_string())
            .or_insert((0, Decimal::ZERO));
        entry.0 += 1;
        if d.currency == "EUR" {
            entry.1 += d.amount;
        }
    }
    let mut lost_reasons = BTreeMap::new();
    for d in seen.iter().filter(|d| d.status == 3 && within(d.closed)) {
        *lost_reasons.entry(d.lost_reason.to_owned()).or_insert(0) += 1;
    }
    let mut competitors: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for d in seen.iter().filter(|d| d.status != 1 && within(d.closed)) {
        for c in &d.competitors {
            let entry = competitors.entry((*c).to_owned()).or_default();
            if d.status == 2 {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    let (mut by_account, mut by_product) = (BTreeMap::new(), BTreeMap::new());
    for d in &won {
        if let Some(account) = d.account {
            let entry = by_account
                .entry(account.to_string())
                .or_insert((0, Decimal::ZERO));
            entry.0 += 1;
            if d.currency == "EUR" {
                entry.1 += d.amount;
            }
        }
        for (product, total) in d.lines.iter().filter(|_| d.currency == "EUR") {
            let entry = by_product
                .entry(product.to_string())
                .or_insert((0, Decimal::ZERO));
            entry.0 += 1;
            entry.1 += *total;
        }
    }
    let cohort: Vec<&&Deal> = seen.iter().filter(|d| within(Some(d.created))).collect();
    let reach = |position: i32| {
        cohort
            .iter()
            .filter(|d| d.status == 2 || d.furthest.is_some_and(|f| f >= position))
            .count() as i64
    };
    Expected {
        won: won.len() as i64,
        lost: lost_reasons.values().sum(),
        won_amount: won.iter().filter(|d| eur(d)).map(|d| d.amount).sum(),
        open: open.len() as i64,
        open_amount: open.iter().filter(|d| eur(d)).map(|d| d.amount).sum(),
        weighted: open
            .iter()
            .filter(|d| eur(d))
            .map(|d| d.amount * Decimal::from(d.probability) / Decimal::from(100))
            .sum::<Decimal>()
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
        leaderboard,
        lost_reasons,
        competitors,
        by_account,
        by_product,
        reached: [
            reach(0),
            reach(1),
            reach(2),
            cohort.iter().filter(|d| d.status == 2).count() as i64,
        ],
    }
}

fn check(d: &SalesDashboard, e: &Expected, who: &str) {
    let amount = |raw: &str| decimal(raw);
    assert_eq!((d.won, d.lost), (e.won, e.lost), "{who}: won and lost");
    assert_eq!(amount(&d.won_amount), e.won_amount, "{who}: won amount");
    assert_eq!(d.open, e.open, "{who}: open");
    assert_eq!(amount(&d.open_amount), e.open_amount, "{who}: open amount");
    assert_eq!(amount(&d.weighted_amount), e.weighted, "{who}: weighted");
    let leaderboard: BTreeMap<String, (i64, Decimal)> = d
        .leaderboard
        .iter()
        .map(|s| (s.key.clone(), (s.count, amount(&s.amount))))
        .collect();
    assert_eq!(leaderboard, e.leaderboard, "{who}: leaderboard");
    let reasons: BTreeMap<String, i64> = d
        .lost_reasons
        .iter()
        .map(|c| (c.key.clone(), c.count))
        .collect();
    assert_eq!(reasons, e.lost_reasons, "{who}: lost reasons");
    let competitors: BTreeMap<String, (i64, i64)> = d
        .competitors
        .iter()
        .map(|c| (c.competitor.clone(), (c.won, c.lost)))
        .collect();
    assert_eq!(competitors, e.competitors, "{who}: competitors");
    let sums = |sums: &[Sum]| -> BTreeMap<String, (i64, Decimal)> {
        sums.iter()
            .map(|s| (s.key.clone(), (s.count, amount(&s.amount))))
            .collect()
    };
    assert_eq!(
        sums(&d.won_by_account),
        e.by_account,
        "{who}: won by account"
    );
    assert_eq!(
        sums(&d.won_by_product),
        e.by_product,
        "{who}: won by product"
    );
    let reached: Vec<i64> = d.funnel.iter().map(|s| s.reached).collect();
    assert_eq!(reached, e.reached, "{who}: funnel");
}

#[tokio::test]
async fn the_rollups_sum_the_same_as_the_deals_for_any_period() {
    let app = TestApp::spawn().await;
    let pool = app.services.db("reporting").admin_pool().await;
    let tenant = app.tenant;
    let pipeline = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO pipelines (tenant_id, id, name, is_default) VALUES ($1, $2, 'Sales', true)",
    )
    .bind(tenant)
    .bind(pipeline)
    .execute(&pool)
    .await
    .expect("pipeline");
    let stages: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (position, (stage, kind)) in stages.iter().zip([1, 1, 1, 2, 3]).enumerate() {
        sqlx::query(
            "INSERT INTO stages (tenant_id, id, pipeline_id, name, position, kind, probability) VALUES ($1, $2, $3, $4, $5, $6, 50)",
        )
        .bind(tenant)
        .bind(stage)
        .bind(pipeline)
        .bind(format!("stage {position}"))
        .bind(position as i32)
        .bind(kind as i16)
        .execute(&pool)
        .await
        .expect("stage");
    }
    let owners: Vec<(Uuid, Uuid)> = (0..3).map(|_| (Uuid::now_v7(), Uuid::now_v7())).collect();
    // Twelve days of history ending at the last midnight, at hours that
    // fall on both sides of the period's ends.
    let midnight = Utc::now()
        .duration_trunc(Duration::days(1))
        .expect("midnight");
    let start = midnight - Duration::days(12);
    let reasons = ["price", "timing", "competitor"];
    let accounts: Vec<Option<Uuid>> = (0..5).map(|i| (i > 0).then(Uuid::now_v7)).collect();
    let products: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut deals: Vec<Deal> = (0..400i64)
        .map(|i| {
            let (owner, team) = owners[(i % 3) as usize];
            let created = start + Duration::minutes(i * 37 % (12 * 24 * 60));
            let status = [1, 2, 3][(i % 5 % 3) as usize];
            Deal {
                id: Uuid::now_v7(),
                owner,
                team,
                status,
                amount: Decimal::new(10_000 + i * 1_234, 2),
                currency: if i % 7 == 0 { "USD" } else { "EUR" },
                probability: (i % 10 * 10) as i32,
                created,
                closed: (status != 1).then(|| created + Duration::minutes(i * 53 % (3 * 24 * 60))),
                lost_reason: if status == 3 {
                    reasons[(i % 3) as usize]
                } else {
                    ""
                },
                furthest: [None, Some(0), Some(1), Some(2)][(i % 4) as usize],
                competitors: [&["Globex"][..], &["Initech", "Globex"], &[]][(i / 3 % 3) as usize]
                    .to_vec(),
                account: accounts[(i % 5) as usize],
                lines: if status == 2 {
                    vec![
                        (products[(i % 3) as usize], Decimal::new(1_000 + i, 2)),
                        (products[0], Decimal::ONE),
                    ]
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    for d in &deals {
        write(&pool, tenant, pipeline, &stages, d).await;
    }
    // Later events: deals won, handed to another owner, deleted.
    for (i, d) in deals.iter_mut().enumerate() {
        if i % 6 == 1 && d.status == 1 {
            d.status = 2;
            d.closed = Some(d.created + Duration::hours(30));
            d.amount += Decimal::ONE;
            d.lines = vec![(products[2], Decimal::new(777, 2))];
        }
        if i % 7 == 2 {
            (d.owner, d.team) = owners[(i + 1) % 3];
            d.furthest = Some(2);
        }
        if i % 6 == 1 || i % 7 == 2 {
            write(&pool, tenant, pipeline, &stages, d).await;
        }
    }
    let gone: Vec<Uuid> = deals.iter().step_by(11).map(|d| d.id).collect();
    delete(&pool, "deals", tenant, &gone).await;
    deals.retain(|d| !gone.contains(&d.id));

    let (ana, ana_team) = owners[0];
    let mut admin = app.admin();
    let mut rep = app.user(ana, &[Role::SalesRep], Visibility::Own, &[ana_team]);
    for (from, to) in periods(start, midnight) {
        let request = GetSalesDashboardRequest {
            from: Some(kit::time::to_timestamp(from)),
            to: Some(kit::time::to_timestamp(to)),
            currency: "EUR".into(),
            ..Default::default()
        };
        for (client, owner, who) in [(&mut admin, None, "admin"), (&mut rep, Some(ana), "rep")] {
            let d = client
                .dashboards
                .get_sales_dashboard(request.clone())
                .await
                .expect("dashboard")
                .into_inner()
                .dashboard
                .expect("dashboard");
            check(
                &d,
                &expected(&deals, from, to, owner),
                &format!("{who} {from}..{to}"),
            );
        }
    }

    // Kept statement by statement = computed again from the deals.
    kept_equals_rebuilt(&pool, tenant, &DEAL_ROLLUPS, "deal_rollups_rebuild").await;
}

#[derive(Clone, Debug)]
struct Ticket {
    id: Uuid,
    owner: Uuid,
    team: Uuid,
    channel: i16,
    status: i16,
    created: DateTime<Utc>,
    first_response: Option<DateTime<Utc>>,
    solved: Option<DateTime<Utc>>,
    csat: Option<i16>,
    breached: bool,
}

async fn write_ticket(pool: &sqlx::PgPool, tenant: Uuid, t: &Ticket) {
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, type, channel, status, owner_id, team_id, created_at, first_response_at, \
         solved_at, csat_score, breached) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET channel = EXCLUDED.channel, status = EXCLUDED.status, \
         owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, first_response_at = EXCLUDED.first_response_at, \
         solved_at = EXCLUDED.solved_at, csat_score = EXCLUDED.csat_score, breached = EXCLUDED.breached",
    )
    .bind(tenant)
    .bind(t.id)
    .bind(t.channel)
    .bind(t.status)
    .bind(t.owner)
    .bind(t.team)
    .bind(t.created)
    .bind(t.first_response)
    .bind(t.solved)
    .bind(t.csat)
    .bind(t.breached)
    .execute(pool)
    .await
    .expect("ticket written");
}

/// percentile_cont(0.5) of whole seconds, rounded as the dashboard rounds.
fn median(mut seconds: Vec<i64>) -> i64 {
    seconds.sort_unstable();
    match seconds.len() {
        0 => 0,
        n if n % 2 == 1 => seconds[n / 2],
        n => ((seconds[n / 2 - 1] + seconds[n / 2]) as f64 / 2.0).round() as i64,
    }
}

fn csat_average(scores: &[i16]) -> String {
    if scores.is_empty() {
        return String::new();
    }
    let sum: i64 = scores.iter().map(|s| i64::from(*s)).sum();
    let mut average = (Decimal::from(sum) / Decimal::from(scores.len() as i64))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    average.rescale(2);
    average.to_string()
}

fn check_service(
    d: &ServiceDashboard,
    tickets: &[Ticket],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    who: &str,
) {
    let within = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= from && t < to);
    let created: Vec<&Ticket> = tickets.iter().filter(|t| within(Some(t.created))).collect();
    let solved: Vec<&Ticket> = tickets.iter().filter(|t| within(t.solved)).collect();
    let open: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| t.status != 6 && t.status != 7)
        .collect();
    assert_eq!(
        (d.created, d.solved, d.backlog),
        (created.len() as i64, solved.len() as i64, open.len() as i64),
        "{who}: counts"
    );
    let mut channels: BTreeMap<i16, i64> = BTreeMap::new();
    for t in &created {
        *channels.entry(t.channel).or_insert(0) += 1;
    }
    let shown: Vec<i64> = d.by_channel.iter().map(|c| c.count).collect();
    let mut counted: Vec<i64> = channels.values().copied().collect();
    counted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(shown, counted, "{who}: by channel");
    let scores: Vec<i16> = solved.iter().filter_map(|t| t.csat).collect();
    assert_eq!(
        (d.csat_responses, d.csat_average.clone()),
        (scores.len() as i64, csat_average(&scores)),
        "{who}: csat"
    );
    let compliant = solved.iter().filter(|t| !t.breached).count() as i64;
    if solved.is_empty() {
        assert_eq!(d.sla_compliance_percent, "", "{who}: compliance");
    } else {
        let shown: f64 = d.sla_compliance_percent.parse().expect("a percentage");
        let counted = compliant as f64 * 100.0 / solved.len() as f64;
        assert!(
            (shown - counted).abs() < 0.051,
            "{who}: compliance {shown} vs {counted}"
        );
    }
    let first = |ts: &[&Ticket]| {
        median(
            ts.iter()
                .filter(|t| within(Some(t.created)))
                .filter_map(|t| Some((t.first_response? - t.created).num_seconds()))
                .collect(),
        )
    };
    let resolution = |ts: &[&Ticket]| {
        median(
            ts.iter()
                .filter(|t| within(t.solved))
                .filter_map(|t| Some((t.solved? - t.created).num_seconds()))
                .collect(),
        )
    };
    let all: Vec<&Ticket> = tickets.iter().collect();
    assert_eq!(
        d.median_first_response_seconds,
        first(&all),
        "{who}: median first response"
    );
    assert_eq!(
        d.median_resolution_seconds,
        resolution(&all),
        "{who}: median resolution"
    );
    // Backlog by age at the clock's now.
    let ages: Vec<i64> = [1, 3, 7]
        .iter()
        .map(|days| {
            open.iter()
                .filter(|t| t.created > now - Duration::days(*days))
                .count() as i64
        })
        .chain([open.len() as i64])
        .collect();
    let buckets: Vec<i64> = d.backlog_by_age.iter().map(|b| b.count).collect();
    assert_eq!(
        buckets,
        vec![
            ages[0],
            ages[1] - ages[0],
            ages[2] - ages[1],
            ages[3] - ages[2]
        ],
        "{who}: backlog by age"
    );
    // Weeks: created and solved.
    let mut weeks: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let week = |t: DateTime<Utc>| {
        let day = t.date_naive();
        (day - Duration::days(i64::from(
            chrono::Datelike::weekday(&day).num_days_from_monday(),
        )))
        .to_string()
    };
    for t in &created {
        weeks.entry(week(t.created)).or_default().0 += 1;
    }
    for t in &solved {
        weeks.entry(week(t.solved.expect("solved"))).or_default().1 += 1;
    }
    let shown: BTreeMap<String, (i64, i64)> = d
        .weeks
        .iter()
        .map(|w| (w.week.clone(), (w.created, w.solved)))
        .collect();
    assert_eq!(shown, weeks, "{who}: weeks");
    // Agents: solved and medians each.
    for agent in &d.agents {
        let theirs: Vec<&Ticket> = tickets
            .iter()
            .filter(|t| t.owner.to_string() == agent.agent_id)
            .collect();
        let solved = theirs.iter().filter(|t| within(t.solved)).count() as i64;
        assert_eq!(
            (
                agent.solved,
                agent.median_first_response_seconds,
                agent.median_resolution_seconds
            ),
            (solved, first(&theirs), resolution(&theirs)),
            "{who}: agent {}",
            agent.agent_id
        );
    }
    let active = tickets
        .iter()
        .filter(|t| within(Some(t.created)) || within(t.solved))
        .map(|t| t.owner)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(d.agents.len(), active.len(), "{who}: agents");
}

#[tokio::test]
async fn the_ticket_rollups_sum_the_same_as_the_tickets_for_any_period() {
    let midnight = Utc::now()
        .duration_trunc(Duration::days(1))
        .expect("midnight");
    let now = midnight + Duration::minutes(5 * 60 + 17);
    let app = TestApp::spawn_at(kit::clock::Clock::manual(now)).await;
    let pool = app.services.db("reporting").admin_pool().await;
    let tenant = app.tenant;
    let owners: Vec<(Uuid, Uuid)> = (0..3).map(|_| (Uuid::now_v7(), Uuid::now_v7())).collect();
    let start = midnight - Duration::days(12);
    let mut tickets: Vec<Ticket> = (0..400i64)
        .map(|i| {
            let (owner, team) = owners[(i % 3) as usize];
            let created = start + Duration::minutes(i * 41 % (12 * 24 * 60));
            let status = [2, 6, 7, 2, 6][(i % 5) as usize];
            // Some open tickets were solved once and reopened.
            let solved = (status != 2 || i % 10 == 3)
                .then(|| created + Duration::minutes(30 + i * 59 % (2 * 24 * 60)));
            Ticket {
                id: Uuid::now_v7(),
                owner,
                team,
                channel: 1 + (i % 4) as i16,
                status,
                created,
                first_response: (i % 6 != 0).then(|| created + Duration::minutes(1 + i * 13 % 600)),
                solved,
                csat: (solved.is_some() && i % 3 != 1).then_some(1 + (i % 5) as i16),
                breached: i % 9 == 0,
            }
        })
        .collect();
    for t in &tickets {
        write_ticket(&pool, tenant, t).await;
    }
    // Later events: solved, reassigned, breached; some deleted.
    for (i, t) in tickets.iter_mut().enumerate() {
        let mut changed = false;
        if i % 8 == 3 && t.status == 2 {
            t.status = 6;
            t.solved = Some(t.created + Duration::hours(20));
            changed = true;
        }
        if i % 7 == 5 {
            (t.owner, t.team) = owners[(i + 1) % 3];
            t.breached = true;
            changed = true;
        }
        if changed {
            write_ticket(&pool, tenant, t).await;
        }
    }
    let gone: Vec<Uuid> = tickets.iter().step_by(13).map(|t| t.id).collect();
    delete(&pool, "tickets", tenant, &gone).await;
    tickets.retain(|t| !gone.contains(&t.id));

    let (ana, ana_team) = owners[0];
    let mut admin = app.admin();
    let mut agent = app.user(ana, &[Role::SupportAgent], Visibility::Own, &[ana_team]);
    let theirs: Vec<Ticket> = tickets.iter().filter(|t| t.owner == ana).cloned().collect();
    for (from, to) in periods(start, midnight) {
        let request = GetServiceDashboardRequest {
            from: Some(kit::time::to_timestamp(from)),
            to: Some(kit::time::to_timestamp(to)),
            ..Default::default()
        };
        for (client, seen, who) in [
            (&mut admin, &tickets, "admin"),
            (&mut agent, &theirs, "agent"),
        ] {
            let d = client
                .dashboards
                .get_service_dashboard(request.clone())
                .await
                .expect("dashboard")
                .into_inner()
                .dashboard
                .expect("dashboard");
            check_service(&d, seen, from, to, now, &format!("{who} {from}..{to}"));
        }
    }

    kept_equals_rebuilt(&pool, tenant, &TICKET_ROLLUPS, "ticket_rollups_rebuild").await;
}
