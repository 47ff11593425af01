//! A PostgreSQL server owned by one test (`initdb` into a temporary
//! directory, on a free port), which the test can kill and restart to see
//! what a crash does to a service. Removed on drop.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

pub struct PgServer {
    port: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// Where initdb and postgres live: `PG_BIN_DIR`, else `pg_config --bindir`,
/// else Debian's per-version directories.
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
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("initdb").exists())
                .collect();
            dirs.sort();
            dirs.pop()
        })
        .expect("PostgreSQL server binaries not found; set PG_BIN_DIR")
}

/// The `postgres` account, when running as root: PostgreSQL refuses to run
/// as root, so its processes drop to that user (a system call, not a
/// `runuser` binary the machine may lack).
fn server_user() -> Option<User> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = User::from_name("postgres")
        .expect("reading the user database")
        .expect("running as root needs a `postgres` user to run PostgreSQL as");
    Some(user)
}

fn command(program: &str) -> Command {
    let mut command = Command::new(bin_dir().join(program));
    if let Some(user) = server_user() {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    command
}

/// Every process whose parent is `parent`, read from `/proc`.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent.as_raw()))
        .map(Pid::from_raw)
        .collect()
}

/// The parent pid from `/proc/<pid>/stat` (the field after the
/// parenthesised command name, which may itself hold spaces).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// SIGKILL that must land: a process already gone is fine, anything else
/// (no permission, no such call) fails the test instead of being ignored.
fn kill_hard(pid: Pid) {
    match kill(pid, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => panic!("cannot SIGKILL PostgreSQL process {pid}: {error}"),
    }
}

/// The running postmaster, from its pid file. A postmaster that was killed
/// leaves the file behind and its pid may since belong to another program,
/// so the pid counts only while it still names a `postgres` process.
fn postmaster_pid(data: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (name.trim() == "postgres").then(|| Pid::from_raw(pid))
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
        if let Some(user) = server_user() {
            std::os::unix::fs::chown(&data, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("giving the data directory to postgres");
        }
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
    /// postmaster and every backend, then waits until the port is closed.
    /// Panics if the server is still there afterwards, so a test never
    /// goes on believing PostgreSQL is down when it is not.
    pub fn kill(&mut self) {
        if !self.stop() {
            panic!(
                "PostgreSQL on port {} still accepts connections after SIGKILL",
                self.port
            );
        }
    }

    /// SIGKILLs the server; true once its port no longer answers.
    fn stop(&mut self) -> bool {
        if let Some(postmaster) = postmaster_pid(&self.data) {
            // Backends first: once the postmaster is gone they would be
            // re-parented and no longer found as its children.
            for backend in children_of(postmaster) {
                kill_hard(backend);
            }
            kill_hard(postmaster);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
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
        // No panic here: a test already failing must report its own error.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
