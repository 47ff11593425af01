//! Token verification: forged, expired, wrong-audience and wrong-algorithm
//! tokens are refused; keys come from PEM or a JWKS endpoint.

use kit::auth::{Role, TokenVerifier, Visibility};
use kit::config::{AuthConfig, KeySource};
use kit::Error;
use std::time::Duration;
use testkit::TokenIssuer;
use uuid::Uuid;

fn verifier_for(issuer: &TokenIssuer) -> TokenVerifier {
    TokenVerifier::new(&AuthConfig {
        keys: KeySource::PublicKeyPem(issuer.public_key_pem().to_owned()),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    })
    .unwrap()
}

fn refusal(result: Result<kit::auth::CallerContext, Error>) -> String {
    match result {
        Err(Error::Unauthenticated(reason)) => reason,
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_give_the_caller_context() {
    let issuer = TokenIssuer::new();
    let (tenant, user) = (Uuid::now_v7(), Uuid::now_v7());
    let token = issuer.sign(&issuer.claims(tenant, user, &[Role::SalesRep], Visibility::Team));
    let caller = verifier_for(&issuer).verify(&token).await.unwrap();
    assert_eq!(caller.tenant_id, tenant);
    assert_eq!(caller.user_id, Some(user));
    assert_eq!(caller.roles, [Role::SalesRep]);
    assert_eq!(caller.visibility, Visibility::Team);
}

/// Verified tokens are remembered; a copy with another signature is a
/// different token and checked in full.
#[tokio::test]
async fn a_remembered_token_does_not_vouch_for_a_changed_signature() {
    let issuer = TokenIssuer::new();
    let verifier = verifier_for(&issuer);
    let tenant = Uuid::now_v7();
    let token = issuer.admin_token(tenant);
    for _ in 0..2 {
        assert_eq!(verifier.verify(&token).await.unwrap().tenant_id, tenant);
    }
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut forged = signature.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = format!("{signed}.{forged}");
    assert!(matches!(
        verifier.verify(&tampered).await,
        Err(Error::Unauthenticated(_))
    ));
    // Same claims, another key: refused, remembered or not.
    let forger = TokenIssuer::new();
    let claims = issuer.claims(tenant, Uuid::now_v7(), &[Role::Admin], Visibility::Tenant);
    assert_eq!(
        verifier
            .verify(&issuer.sign(&claims))
            .await
            .unwrap()
            .tenant_id,
        tenant
    );
    assert_eq!(
        refusal(verifier.verify(&forger.sign(&claims)).await),
        "token signature invalid"
    );
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_refused() {
    let issuer = TokenIssuer::new();
    let verifier = verifier_for(&issuer);
    let tenant = Uuid::now_v7();
    let claims = issuer.claims(tenant, Uuid::now_v7(), &[Role::Admin], Visibility::Tenant);

    let forger = TokenIssuer::new();
    assert_eq!(
        refusal(verifier.verify(&forger.sign(&claims)).await),
        "token signature invalid"
    );

    let mut expired = claims.clone();
    expired.exp = chrono::Utc::now().timestamp() - 3600;
    assert_eq!(
        refusal(verifier.verify(&issuer.sign(&expired)).await),
        "token expired"
    );

    let mut other_audience = claims.clone();
    other_audience.aud = "another-system".into();
    assert_eq!(
        refusal(verifier.verify(&issuer.sign(&other_audience)).await),
        "token audience not accepted"
    );

    let mut other_issuer = claims.clone();
    other_issuer.iss = "someone-else".into();
    assert_eq!(
        refusal(verifier.verify(&issuer.sign(&other_issuer)).await),
        "token issuer not accepted"
    );

    // A symmetric token signed with the public key as secret (key confusion).
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(issuer.public_key_pem().as_bytes()),
    )
    .unwrap();
    assert_eq!(
        refusal(verifier.verify(&hs256).await),
        "token algorithm not accepted"
    );

    // Tampered payload with the original signature.
    let token = issuer.sign(&claims);
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = issuer.sign(&issuer.claims(
        Uuid::now_v7(),
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
    ));
    let other_payload = other.split('.').nth(1).unwrap().to_owned();
    parts[1] = &other_payload;
    assert_eq!(
        refusal(verifier.verify(&parts.join(".")).await),
        "token signature invalid"
    );

    assert_eq!(
        refusal(verifier.verify("not a token").await),
        "malformed bearer token"
    );
}

#[tokio::test]
async fn keys_are_fetched_from_a_jwks_endpoint() {
    let issuer = TokenIssuer::new();
    let jwks = issuer.jwks();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let verifier = TokenVerifier::new(&AuthConfig {
        keys: KeySource::JwksUrl(format!("http://{address}/.well-known/jwks.json")),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    })
    .unwrap();
    let tenant = Uuid::now_v7();
    let caller = verifier.verify(&issuer.admin_token(tenant)).await.unwrap();
    assert_eq!(caller.tenant_id, tenant);

    // A token from a key the JWKS does not list is refused.
    let stranger = TokenIssuer::new();
    assert_eq!(
        refusal(verifier.verify(&stranger.admin_token(tenant)).await),
        "token signed by an unknown key"
    );
}

/// A key the gateway stops publishing (retired, or removed after a leak)
/// stops being accepted once the cached set is re-read.
#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_working() {
    use std::sync::{Arc, Mutex};
    let (old, new) = (TokenIssuer::new(), TokenIssuer::new());
    let published = Arc::new(Mutex::new(old.jwks()));
    let serving = published.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let set = serving.lock().unwrap().clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let verifier = TokenVerifier::new(&AuthConfig {
        keys: KeySource::JwksUrl(format!("http://{address}/jwks")),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    })
    .unwrap()
    .with_jwks_max_age(Duration::from_millis(100));
    let tenant = Uuid::now_v7();
    let old_token = old.admin_token(tenant);
    verifier.verify(&old_token).await.unwrap();

    *published.lock().unwrap() = new.jwks();
    testkit::eventually(
        "the retired key is refused",
        Duration::from_secs(10),
        || async {
            matches!(
                verifier.verify(&old_token).await,
                Err(Error::Unauthenticated(reason)) if reason == "token signed by an unknown key"
            )
            .then_some(())
        },
    )
    .await;
    verifier.verify(&new.admin_token(tenant)).await.unwrap();
}

/// A JWKS endpoint that fails is not asked again on every request: tokens
/// with made-up key ids cannot turn into a flood of fetches.
#[tokio::test]
async fn failed_jwks_fetches_are_not_repeated_on_every_request() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let verifier = TokenVerifier::new(&AuthConfig {
        keys: KeySource::JwksUrl(format!("http://{address}/jwks")),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    })
    .unwrap();
    let forger = TokenIssuer::new();
    for _ in 0..20 {
        assert!(verifier
            .verify(&forger.admin_token(Uuid::now_v7()))
            .await
            .is_err());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}
