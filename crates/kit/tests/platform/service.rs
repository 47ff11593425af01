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
