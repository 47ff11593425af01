//! The gRPC bootstrap: health, authentication on every non-probe route,
//! admin endpoints, graceful stop.

use std::time::Duration;

use kit::service::{launch, GrpcRoutes, ServiceContext};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use uuid::Uuid;

use crate::common::MIGRATIONS;

/// Calls a method no service implements, so the answer shows what the
/// authentication layer decided before routing.
async fn call_unrouted(channel: Channel, token: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::from_static("/crm.probe.v1.ProbeService/Ping");
    grpc.unary::<(), (), _>(request, path, tonic_prost::ProstCodec::default())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn serves_health_checks_auth_and_admin_endpoints_then_stops_cleanly() {
    let (db, nats, issuer) = (
        TestDatabase::create().await,
        TestNats::new(),
        TokenIssuer::new(),
    );
    let context =
        ServiceContext::connect(service_config("kittest", &db, &nats, &issuer), &MIGRATIONS)
            .await
            .unwrap();
    let running = launch(
        context,
        GrpcRoutes {
            routes: tonic::service::Routes::default(),
            health_names: vec!["crm.kittest.v1.KittestService"],
        },
        Vec::new(),
    )
    .await
    .unwrap();

    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "crm.kittest.v1.KittestService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    assert_eq!(
        call_unrouted(channel.clone(), None).await.code(),
        tonic::Code::Unauthenticated
    );
    let forged = TokenIssuer::new().admin_token(Uuid::now_v7());
    assert_eq!(
        call_unrouted(channel.clone(), Some(&forged)).await.code(),
        tonic::Code::Unauthenticated
    );
    let valid = issuer.admin_token(Uuid::now_v7());
    assert_eq!(
        call_unrouted(channel.clone(), Some(&valid)).await.code(),
        tonic::Code::Unimplemented
    );

    // gRPC-Web over HTTP/1.1, as a browser sends it: a framed health check.
    let message = prost::Message::encode_to_vec(&HealthCheckRequest {
        service: String::new(),
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let web = reqwest::Client::new()
        .post(format!(
            "http://{}/grpc.health.v1.Health/Check",
            running.grpc_addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(web.status(), 200);
    assert!(web.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc-web"));
    let body = web.bytes().await.unwrap();
    assert_eq!(body[0], 0, "a data frame first");
    assert!(
        String::from_utf8_lossy(&body).contains("grpc-status:0"),
        "trailers say OK"
    );

    let admin = format!("http://{}", running.admin_addr);
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{admin}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("crm_grpc_requests_total"), "{metrics}");
    // Made-up paths do not become metric series.
    assert!(metrics.contains("method=\"unknown\""), "{metrics}");
    assert!(!metrics.contains("ProbeService"), "{metrics}");

    let grpc_addr = running.grpc_addr;
    tokio::time::timeout(Duration::from_secs(30), running.stop())
        .await
        .expect("stopped in time")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
        "port still open after stop"
    );
}

/// A balanced channel spreads calls over every address its name resolves
/// to (a headless Service's pods) and follows the resolver when an address
/// goes away.
#[tokio::test]
async fn balanced_channels_spread_calls_and_follow_resolution() {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use testkit::eventually;
    use tonic_health::pb::health_check_response::ServingStatus;

    // Two "pods", told apart by the status they report for `probe`.
    async fn pod(status: tonic_health::ServingStatus) -> SocketAddr {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("probe", status).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _reporter = reporter;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        address
    }
    let first = pod(tonic_health::ServingStatus::Serving).await;
    let second = pod(tonic_health::ServingStatus::NotServing).await;
    let addresses = Arc::new(Mutex::new(vec![first, second]));
    let resolved = addresses.clone();
    let channel = kit::balance::channel_with(
        move || {
            let now = resolved.lock().unwrap().clone();
            async move { Ok(now) }
        },
        "http",
        Duration::from_secs(2),
        Duration::from_millis(50),
    );
    let client = HealthClient::new(channel);
    let statuses = |client: HealthClient<tonic::transport::Channel>| async move {
        let mut seen = HashSet::new();
        for _ in 0..40 {
            let request = HealthCheckRequest {
                service: "probe".into(),
            };
            if let Ok(answer) = client.clone().check(request).await {
                seen.insert(answer.into_inner().status);
            }
        }
        seen
    };
    eventually(
        "calls reach both addresses",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move { (statuses(client).await.len() == 2).then_some(()) }
        },
    )
    .await;
    // The second pod leaves the name: calls go to the first only.
    *addresses.lock().unwrap() = vec![first];
    eventually(
        "calls reach the remaining address only",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                let seen = statuses(client).await;
                (seen == HashSet::from([ServingStatus::Serving as i32])).then_some(())
            }
        },
    )
    .await;
}
