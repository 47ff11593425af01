//! A real SMTP server inside the test process (`mailin-embedded`), on a
//! free loopback port: services send to it with their real SMTP client, and
//! tests read what it received.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{response, Handler, Response, Server};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message: headers and body, as sent.
    pub data: String,
}

impl Received {
    /// The message with quoted-printable soft breaks and escapes decoded,
    /// so links and text in its parts read as written.
    pub fn decoded(&self) -> String {
        let bytes =
            quoted_printable::decode(self.data.as_bytes(), quoted_printable::ParseMode::Robust)
                .unwrap_or_else(|_| self.data.clone().into_bytes());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Every URL in the decoded message that starts with `prefix`.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        let decoded = self.decoded();
        decoded
            .match_indices(prefix)
            .map(|(at, _)| {
                decoded[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>' | '\''))
                    .collect()
            })
            .collect()
    }

    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

#[derive(Clone)]
struct Capture {
    received: Arc<Mutex<Vec<Received>>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    /// Whether messages are kept (tests) or only counted (benchmarks).
    keep: bool,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl Handler for Capture {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !self.keep {
            self.data.clear();
            return response::OK;
        }
        let message = Received {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        if let Ok(mut received) = self.received.lock() {
            received.push(message);
        }
        response::OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }
}

pub struct SmtpServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpServer {
    /// Starts the server on a free loopback port (it runs until the test
    /// process ends).
    pub fn start() -> Self {
        Self::listen(true)
    }

    /// A server that only counts what it receives (benchmarks: a hundred
    /// thousand messages kept would be the process's memory).
    pub fn counting() -> Self {
        Self::listen(false)
    }

    fn listen(keep: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handler = Capture {
            received: received.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            keep,
            count: count.clone(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("testkit.smtp")
            // A thread per connection: enough for a sender's pool of
            // kept connections and the tests' own at once.
            .with_num_threads(32)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(error) = server.serve() {
                eprintln!("the test SMTP server stopped: {error}");
            }
        });
        SmtpServer {
            addr,
            received,
            count,
        }
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `smtp://127.0.0.1:<port>`, as `MARKETING_SMTP_URL` takes it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until at least `count` messages arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        crate::eventually(
            &format!("{count} messages at the SMTP server"),
            Duration::from_secs(30),
            || async {
                let now = self.received();
                (now.len() >= count).then_some(now)
            },
        )
        .await
    }
}
