//! The whole platform as `deploy/run.sh` starts it (separate processes,
//! real PostgreSQL and NATS), for the cross-service flows in `tests/` and
//! the fault suite (`deploy/chaos.sh`).
//!
//! Each [`Platform`] is its own instance: databases and roles named
//! `crm_test_e2e_<id>_*`, NATS streams under a private prefix, free ports,
//! a state directory of its own. [`Platform::stop`] removes all of it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long the first start may take: `run.sh` builds the binaries (a
/// no-op when `deploy/test.sh` built them before the tests).
const START_DEADLINE: Duration = Duration::from_secs(900);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Platform {
    run: Child,
    group: Pid,
    pub base: String,
    pub state_dir: PathBuf,
    /// `CRM_INSTANCE`: the prefix of the databases and roles.
    pub instance: String,
    /// `CRM_NATS_PREFIX`: the prefix of the streams and subjects.
    pub nats_prefix: String,
    pub admin_url: String,
    pub nats_url: String,
    pub bootstrap_token: String,
    pub http: reqwest::Client,
    stopped: bool,
}

/// A response: its status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body of a response with `status`; panics with the body otherwise.
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        self.body
    }

    /// `body[key]` as a string.
    pub fn id(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.body))
            .to_owned()
    }
}

fn port_free(port: i32) -> bool {
    u16::try_from(port).is_ok_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// A port offset whose service ports (50051.. and admin 51051..) are free,
/// and a free HTTP port whose admin port (+1000) is free too; all below
/// the kernel's ephemeral range (32768..), where outgoing connections
/// cannot take them.
fn free_ports() -> anyhow::Result<(i32, i32)> {
    let seed = i32::from(uuid::Uuid::now_v7().as_bytes()[15]);
    for attempt in 0..300 {
        let offset = -(22_000 + ((seed + attempt * 37) % 300) * 20);
        let http = 10_000 + ((seed + attempt * 53) % 700) * 10;
        // The service desk's SMTP listener takes 50560 + offset (run.sh).
        let ports = (50051..=50055)
            .flat_map(|p| [p + offset, p + offset + 1000])
            .chain([50560 + offset]);
        if ports.chain([http, http + 1000]).all(port_free) {
            return Ok((offset, http));
        }
    }
    bail!("no free ports for a platform instance")
}

impl Platform {
    /// Starts `deploy/run.sh` (debug binaries) on free ports and waits until
    /// it reports the platform running.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Like [`Platform::start`], with extra environment for every process.
    pub async fn start_with(extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let id = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let instance = format!("crm_test_e2e_{id}");
        let nats_prefix = format!("e2e{id}");
        let state_dir = std::env::temp_dir().join(format!("crm-e2e-{id}"));
        std::fs::create_dir_all(&state_dir)?;
        let admin_url = std::env::var("CRM_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("CRM_PG_ADMIN_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let (offset, http_port) = free_ports()?;
        let mut run = Command::new("bash");
        // The variables cargo sets for this test would make run.sh's own
        // `cargo build` see changed inputs and rebuild half the tree.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
                || key == "OUT_DIR"
            {
                run.env_remove(key.as_ref());
            }
        }
        let mut run = run
            .arg(repo_root().join("deploy/run.sh"))
            .current_dir(repo_root())
            .env("CRM_PROFILE", "dev")
            .env("CRM_PORT_OFFSET", offset.to_string())
            .env("CRM_HTTP_PORT", http_port.to_string())
            .env("CRM_INSTANCE", &instance)
            .env("CRM_STATE_DIR", &state_dir)
            .env("CRM_PG_ADMIN_URL", &admin_url)
            .env("NATS_URL", &nats_url)
            .env("CRM_NATS_PREFIX", &nats_prefix)
            .env("RUST_LOG", "warn")
            .envs(extra_env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting deploy/run.sh")?;
        let group = Pid::from_raw(run.id().context("run.sh has a pid")? as i32);
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        for stream in [
            run.stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            run.stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines_tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        let mut platform = Self {
            run,
            group,
            base: format!("http://127.0.0.1:{http_port}"),
            state_dir,
            instance,
            nats_prefix,
            admin_url,
            nats_url,
            bootstrap_token: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            stopped: false,
        };
        let mut seen = Vec::new();
        let ready = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = lines.recv().await {
                let done = line.contains("the CRM is running");
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let output = seen.join("\n");
            platform.stop().await;
            bail!("deploy/run.sh did not report the platform running:\n{output}");
        }
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while lines.recv().await.is_some() {} });
        platform.bootstrap_token =
            std::fs::read_to_string(platform.state_dir.join("bootstrap-token"))?
                .trim()
                .to_owned();
        Ok(platform)
    }

    /// The demo tenant's admin token that `run.sh` wrote.
    pub fn demo_token(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.state_dir.join("demo-token"))?
            .trim()
            .to_owned())
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Creates a tenant with an admin (bootstrap token) and logs the admin
    /// in; returns (tenant id, access token).
    pub async fn tenant(&self, name: &str) -> anyhow::Result<(String, String)> {
        let email = format!("admin@{}.example", name.to_lowercase());
        let password = "correct horse battery";
        let created = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&self.bootstrap_token),
                Some(json!({"name": name, "admin_email": email, "admin_name": "Admin", "admin_password": password})),
            )
            .await?;
        if created.status != StatusCode::CREATED {
            bail!(
                "creating tenant {name}: {} {}",
                created.status,
                created.body
            );
        }
        let login = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if login.status != StatusCode::OK {
            bail!("logging in as {email}: {} {}", login.status, login.body);
        }
        Ok((created.id("tenant_id"), login.id("access_token")))
    }

    /// A pool on one service's database as the admin (to check end states
    /// that the API does not show, e.g. inbox rows).
    pub async fn database(&self, service: &str) -> anyhow::Result<sqlx::PgPool> {
        let url = reqwest::Url::parse(&self.admin_url)?;
        let mut url = url.clone();
        url.set_path(&format!("/{}_{service}", self.instance));
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url.as_str())
            .await?)
    }

    /// The processes of one binary (e.g. `crm-customers`) this instance runs.
    pub fn pids_of(&self, binary: &str) -> Vec<Pid> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // pid (comm) state ppid pgrp ...
                let Some((comm, rest)) = stat.split_once(") ") else {
                    return false;
                };
                let pgrp = rest.split(' ').nth(2).and_then(|p| p.parse::<i32>().ok());
                comm.ends_with(&format!("({binary}")) && pgrp == Some(self.group.as_raw())
            })
            .map(Pid::from_raw)
            .collect()
    }

    /// How a running binary was started: executable and environment.
    pub fn spec_of(&self, binary: &str) -> anyhow::Result<ProcessSpec> {
        let pid = *self
            .pids_of(binary)
            .first()
            .with_context(|| format!("{binary} is not running"))?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        Ok(ProcessSpec {
            binary: binary.to_owned(),
            pid,
            exe: std::fs::read_link(format!("/proc/{pid}/exe"))?,
            env: environ
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let (k, v) = std::str::from_utf8(kv).ok()?.split_once('=')?;
                    Some((k.to_owned(), v.to_owned()))
                })
                .collect(),
        })
    }

    /// Starts `spec` in this instance's process group (so [`Platform::stop`]
    /// ends it too), its output appended to the binary's log.
    pub fn spawn(&self, spec: &ProcessSpec) -> anyhow::Result<Pid> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(
            self.state_dir
                .join("logs")
                .join(format!("{}.log", spec.binary)),
        )?;
        let child = std::process::Command::new(&spec.exe)
            .env_clear()
            .envs(&spec.env)
            .current_dir(repo_root())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(self.group.as_raw())
            .spawn()
            .with_context(|| format!("starting {}", spec.binary))?;
        Ok(Pid::from_raw(child.id() as i32))
    }

    /// Sends `signal` to `pid` and waits (up to a minute) until it exited.
    pub async fn signal_and_wait(pid: Pid, signal: Signal) -> anyhow::Result<()> {
        kill(pid, signal)?;
        testkit::eventually(
            &format!("process {pid} to exit"),
            Duration::from_secs(60),
            || async { is_gone(pid).then_some(()) },
        )
        .await;
        Ok(())
    }

    /// Kills one binary with `signal` and starts it again as it was started
    /// once it has exited; answers the new process.
    pub async fn restart(&self, binary: &str, signal: Signal) -> anyhow::Result<Pid> {
        let spec = self.spec_of(binary)?;
        Self::signal_and_wait(spec.pid, signal).await?;
        self.spawn(&spec)
    }

    /// Stops every process of the instance and removes its databases,
    /// roles, streams and state directory.
    pub async fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = killpg(self.group, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(30), self.run.wait())
            .await
            .is_err()
        {
            let _ = killpg(self.group, Signal::SIGKILL);
            let _ = self.run.wait().await;
        }
        // Services restarted by the fault suite are in the group but not
        // children of run.sh.
        let _ = killpg(self.group, Signal::SIGKILL);
        if let Err(error) = self.drop_databases().await {
            eprintln!("cleaning up {}: {error:#}", self.instance);
        }
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            let prefix = format!("{}_", self.nats_prefix.to_uppercase());
            let mut names = js.stream_names();
            let mut doomed = Vec::new();
            while let Some(Ok(name)) = futures::StreamExt::next(&mut names).await {
                if name.starts_with(&prefix) {
                    doomed.push(name);
                }
            }
            for name in doomed {
                let _ = js.delete_stream(&name).await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }

    async fn drop_databases(&self) -> anyhow::Result<()> {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url)
            .await?;
        let like = format!("{}\\_%", self.instance.replace('_', "\\_"));
        // Databases first: a role that still owns one cannot be dropped.
        for (list, drop) in [
            (
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            ),
            (
                "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
                "DROP ROLE IF EXISTS \"{}\"",
            ),
        ] {
            let names: Vec<(String,)> = sqlx::query_as(list).bind(&like).fetch_all(&admin).await?;
            for (name,) in names {
                sqlx::query(&drop.replace("{}", &name))
                    .execute(&admin)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Exited: no such process, or a zombie waiting for its parent.
fn is_gone(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.split_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A process as it was started, to start it again.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub binary: String,
    pub pid: Pid,
    pub exe: PathBuf,
    pub env: HashMap<String, String>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        if !self.stopped {
            // A failed test: no async clean-up here; deploy/test.sh drops
            // leftover crm_test_* databases on its next run.
            let _ = killpg(self.group, Signal::SIGKILL);
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
