//! A PostgreSQL server owned by one test (`initdb` into a temporary
//! directory, on a free port), which the test can kill and restart to see
//! what a crash does to a service. Removed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PgServer {
    port: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// Where initdb and postgres live: `PG_BIN_DIR`, else `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return dir.into();
    }
    Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.join("initdb").exists())
        .or_else(|| {
            // Debian keeps the server binaries per major version.
            std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .find(|p| p.join("initdb").exists())
        })
        .expect("PostgreSQL server binaries not found; set PG_BIN_DIR")
}

/// PostgreSQL refuses to run as root: as root, run it as `postgres`.
fn command(program: &str) -> Command {
    let path = bin_dir().join(program);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

impl PgServer {
    /// Initialises a cluster (trust auth, superuser `postgres`) and starts it.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = std::env::temp_dir().join(format!("crm-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&data).expect("temporary directory");
        let _ = Command::new("chown").arg("postgres").arg(&data).status();
        let status = command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed in {}", data.display());
        let mut server = Self {
            port,
            data,
            child: None,
        };
        server.restart().await;
        server
    }

    /// Admin URL of the server (superuser, trust auth).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server at once, as a crash would: SIGKILL to the
    /// postmaster and every backend (the process we spawned may be a
    /// `runuser` wrapper, so the postmaster's pid comes from its pid file).
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let quiet = |program: &str, args: &[&str]| {
                let _ = Command::new(program)
                    .args(args)
                    .stderr(Stdio::null())
                    .status();
            };
            quiet("pkill", &["-KILL", "-P", &pid]);
            quiet("kill", &["-KILL", &pid]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Backends notice their postmaster is gone and exit; wait for the
        // port to close so a restart can bind it again.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.kill();
        // A killed postmaster leaves its pid file; the new one checks it.
        let child = command("postgres")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-k",
            ])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let url = self.url();
        crate::eventually(
            "PostgreSQL to accept connections",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    use sqlx::Connection as _;
                    sqlx::PgConnection::connect(&url).await.ok().map(|_| ())
                }
            },
        )
        .await;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
