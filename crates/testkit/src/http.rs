//! Local HTTP endpoints for what services post out (webhooks, SMS
//! providers): [`HttpRecorder`] keeps every request and answers as the
//! test says.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// The header's value; empty when absent.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

pub struct HttpRecorder {
    /// Where it answers (`http://127.0.0.1:<port><path>`).
    pub url: String,
    received: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpRecorder {
    /// Serves POST `path` on loopback; the n-th request (from 0) gets the
    /// status `answer(n, &request)`.
    pub async fn start(
        path: &str,
        answer: impl Fn(usize, &Recorded) -> u16 + Clone + Send + Sync + 'static,
    ) -> Self {
        let received: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = received.clone();
        let route = axum::routing::post(move |headers: HeaderMap, body: String| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let request = Recorded { headers, body };
                let mut seen = seen.lock().expect("recorder lock");
                let status = answer(seen.len(), &request);
                seen.push(request);
                axum::http::StatusCode::from_u16(status).expect("an HTTP status")
            }
        });
        let url = serve(path, route).await;
        HttpRecorder { url, received }
    }

    /// What it received so far, in order.
    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().expect("recorder lock").clone()
    }
}

/// Serves `route` at `path` on loopback; answers its URL.
pub async fn serve(path: &str, route: axum::routing::MethodRouter) -> String {
    let app = axum::Router::new().route(path, route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}{path}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
