//! Reports over REST and the app's dashboard page: saved reports and a
//! dashboard made through the API, their CSV, a person signed in to the
//! page by an entry link or the sign-in form, and the page looked at by a
//! real headless Chromium (Debian's package; `deploy/test.sh` installs it):
//! its screenshot must show the charts' bars.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

/// The colour of a chart's first series (`domain::chart::PALETTE[0]`).
const FIRST_SERIES: [u8; 3] = [31, 119, 180];

fn chromium() -> String {
    let binary = std::env::var("CRM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "headless Chromium is needed ({binary}): deploy/test.sh installs Debian's chromium"
    );
    binary
}

/// Runs headless Chromium on `url` with `args` in a fresh profile; returns
/// its standard output. On a blocking thread: the gateway it browses runs
/// on this test's runtime.
async fn browse(binary: &str, url: &str, args: &[&str]) -> String {
    let (binary, url) = (binary.to_owned(), url.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run_chromium(&binary, &url, &args))
        .await
        .expect("chromium ran")
}

fn run_chromium(binary: &str, url: &str, args: &[String]) -> String {
    let profile = tempfile_dir();
    // Headless Chromium does not always exit once done: it has a minute.
    let output = std::process::Command::new("timeout")
        .args(["60", binary])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crm-chromium-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a profile directory");
    dir
}

/// Pixels of the PNG at `path` in `color` (give or take antialiasing).
fn pixels_of(path: &std::path::Path, color: [u8; 3]) -> usize {
    let file = std::fs::File::open(path).expect("the screenshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let channels = info.color_type.samples();
    buffer[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.len() >= 3 && p[..3].iter().zip(color).all(|(a, b)| a.abs_diff(b) <= 6))
        .count()
}

async fn won_deals(stack: &Stack, t: Option<&str>) {
    let pipeline = stack
        .call(Method::POST, "/v1/pipelines", t,
            Some(json!({"name": "New business", "stages": [{"name": "Qualify", "probability": 10},
                {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})), &[])
        .await;
    let pipeline = json_of(pipeline, 201).await;
    let account = stack
        .call(
            Method::POST,
            "/v1/accounts",
            t,
            Some(json!({"name": "Initech"})),
            &[],
        )
        .await;
    let account = json_of(account, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (stage, amount) in [(1, "1200"), (1, "800"), (0, "5000")] {
        let deal = stack
            .call(
                Method::POST,
                "/v1/opportunities",
                t,
                Some(
                    json!({"name": format!("Deal {amount}"), "account_id": account,
                    "pipeline_id": pipeline["id"], "stage_id": pipeline["stages"][stage]["id"],
                    "amount": {"amount": amount, "currency": "EUR"}}),
                ),
                &[],
            )
            .await;
        json_of(deal, 201).await;
    }
}

fn by_status() -> Value {
    json!({
        "dataset": "deals",
        "group_by": [{"field": "status"}],
        "measures": [{"aggregate": "AGGREGATE_COUNT"}, {"aggregate": "AGGREGATE_SUM", "field": "amount"}],
        "sort": [{"key": "status"}]
    })
}

#[tokio::test]
async fn a_report_dashboard_is_a_page_a_browser_draws() {
    let browser = chromium();
    let stack = Stack::start().await;
    let (_, token) = stack.tenant("Acme").await;
    let t = Some(token.as_str());
    won_deals(&stack, t).await;

    // Bad definitions are named by field over REST too.
    let mut bad = by_status();
    bad["group_by"][0]["field"] = json!("status; DROP TABLE deals");
    bad["sort"] = json!([]);
    let refused = stack
        .call(
            Method::POST,
            "/v1/report-results",
            t,
            Some(json!({"definition": bad})),
            &[],
        )
        .await;
    assert_eq!(
        fields(&problem(refused, 400).await),
        ["definition.group_by[0].field"]
    );
    let result = testkit::eventually(
        "the deals are in reporting",
        Duration::from_secs(30),
        || async {
            let computed = stack
                .call(
                    Method::POST,
                    "/v1/report-results",
                    t,
                    Some(json!({"definition": by_status()})),
                    &[],
                )
                .await;
            let result = json_of(computed, 200).await;
            (result["rows"].as_array().map_or(0, Vec::len) == 2).then_some(result)
        },
    )
    .await;
    assert_eq!(result["rows"][0]["values"], json!(["open", "1", "5000.00"]));
    assert_eq!(result["rows"][1]["values"], json!(["won", "2", "2000.00"]));

    let report = stack
        .call(Method::POST, "/v1/reports", t,
            Some(json!({"name": "Deals by status", "definition": by_status(), "chart": "bar", "sharing": "SHARING_TENANT"})), &[])
        .await;
    let report = json_of(report, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let board = stack
        .call(
            Method::POST,
            "/v1/report-dashboards",
            t,
            Some(json!({"name": "Sales board", "report_ids": [report]})),
            &[("Idempotency-Key", "board-1")],
        )
        .await;
    let board = json_of(board, 201).await["id"].as_str().unwrap().to_owned();
    let csv = stack
        .call(
            Method::GET,
            &format!("/v1/reports/{report}/export"),
            t,
            None,
            &[],
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        csv.text().await.unwrap(),
        "status,count,sum_amount\nopen,1,5000.00\nwon,2,2000.00\n"
    );

    // Without a session the page sends the browser to sign in.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = format!("{}/app/dashboards/{board}", stack.base);
    let anonymous = no_redirects.get(&page).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/app/login");

    // An entry link for the page: Chromium follows it, gets the session and
    // draws the dashboard.
    let link = stack
        .call(
            Method::POST,
            "/v1/app-links",
            t,
            Some(json!({"path": format!("/app/dashboards/{board}")})),
            &[],
        )
        .await;
    let link = json_of(link, 201).await["url"].as_str().unwrap().to_owned();
    let url = format!("{}{link}", stack.base);
    let dom = browse(&browser, &url, &["--dump-dom"]).await;
    assert!(dom.contains("<h1>Sales board</h1>"), "{dom}");
    assert!(dom.contains("Deals by status"), "the report's title");
    assert_eq!(dom.matches("<svg").count(), 1, "one chart per report");
    assert!(dom.contains("2000.00"), "the report's table");
    let shot = std::env::temp_dir().join(format!("crm-dashboard-{board}.png"));
    browse(
        &browser,
        &url,
        &[
            "--window-size=1280,1400",
            &format!("--screenshot={}", shot.display()),
        ],
    )
    .await;
    let bars = pixels_of(&shot, FIRST_SERIES);
    let _ = std::fs::remove_file(&shot);
    assert!(
        bars > 2_000,
        "the screenshot shows the chart's bars ({bars} pixels)"
    );

    // The sign-in form opens a session too; the cookie is the app's only
    // and scripts cannot read it.
    let signed_in = no_redirects
        .post(format!("{}/app/login", stack.base))
        .form(&[
            ("email", "admin@acme.example"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/app")
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let listed = no_redirects
        .get(format!("{}/app/dashboards", stack.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-frame-options"], "DENY");
    assert!(listed.text().await.unwrap().contains("Sales board"));
    let wrong = no_redirects
        .post(format!("{}/app/login", stack.base))
        .form(&[("email", "admin@acme.example"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    // Another tenant's person sees nothing of it; an entry link is no API
    // token; links go to app pages only; a viewer saves no report.
    let (_, other) = stack.tenant("Globex").await;
    let foreign = stack
        .call(
            Method::POST,
            "/v1/app-links",
            Some(&other),
            Some(json!({"path": format!("/app/dashboards/{board}")})),
            &[],
        )
        .await;
    let foreign = json_of(foreign, 201).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let entered = no_redirects
        .get(format!("{}{foreign}", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(entered.status(), 303);
    let session = entered.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let theirs = no_redirects
        .get(&page)
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404, "another tenant's dashboard");
    let forged = no_redirects
        .get(&page)
        .header("cookie", format!("crm_session={}x", token))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303, "a forged session signs in nobody");
    let ticket = link
        .trim_start_matches("/app/enter/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let as_api = stack
        .call(Method::GET, "/v1/reports", Some(&ticket), None, &[])
        .await;
    assert_eq!(
        as_api.status(),
        403,
        "an entry link's token opens pages only"
    );
    let outside = stack
        .call(
            Method::POST,
            "/v1/app-links",
            t,
            Some(json!({"path": "https://evil.example/app/"})),
            &[],
        )
        .await;
    assert_eq!(fields(&problem(outside, 400).await), ["path"]);
    let viewer = stack.user(&token, "viewer@acme.example", "viewer").await;
    let refused = stack
        .call(
            Method::POST,
            "/v1/reports",
            Some(&viewer),
            Some(json!({"name": "Peek", "definition": by_status()})),
            &[],
        )
        .await;
    problem(refused, 403).await;
    let listed = stack
        .call(Method::GET, "/v1/reports", Some(&viewer), None, &[])
        .await;
    assert_eq!(
        json_of(listed, 200).await["reports"]
            .as_array()
            .map_or(0, Vec::len),
        1,
        "the shared report"
    );
}
