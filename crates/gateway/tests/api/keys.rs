//! The token signing keys are sealed at rest: a copy of the gateway's
//! database does not hold a usable private key, and changing the
//! key-encryption key re-seals them without invalidating tokens.

use gateway::keyring::KeyRing;
use gateway::sealing::{KeyEncryptionKey, KeyEncryptionKeys};
use kit::auth::Claims;
use kit::db::Database;
use testkit::TestDatabase;

async fn database(test: &TestDatabase) -> Database {
    Database::connect(&test.config(), &kit::db::migrator(&gateway::MIGRATIONS))
        .await
        .expect("the gateway's database migrates")
}

async fn token(ring: &KeyRing) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: "crm-gateway".into(),
        aud: "crm".into(),
        sub: uuid::Uuid::now_v7().to_string(),
        tid: uuid::Uuid::now_v7(),
        roles: vec![],
        teams: vec![],
        scopes: vec![],
        vis: Default::default(),
        exp: now + 300,
        iat: now,
        jti: String::new(),
    };
    ring.sign(&claims).await.expect("the active key signs")
}

/// (kid, private_pem, sealed_private, sealed_with) of every key.
async fn rows(
    test: &TestDatabase,
) -> Vec<(String, Option<String>, Option<Vec<u8>>, Option<String>)> {
    sqlx::query_as("SELECT kid, private_pem, sealed_private, sealed_with FROM signing_keys ORDER BY created_at")
        .fetch_all(&test.admin_pool().await)
        .await
        .unwrap()
}

fn holds_plaintext(sealed: &[u8]) -> bool {
    sealed.windows(11).any(|w| w == b"PRIVATE KEY")
}

#[tokio::test]
async fn signing_keys_are_sealed_at_rest_and_resealed_when_the_key_encryption_key_changes() {
    let test = TestDatabase::create().await;
    let db = database(&test).await;
    let (old, new) = (KeyEncryptionKey::generate(), KeyEncryptionKey::generate());

    let ring = KeyRing::load(
        db.clone(),
        KeyEncryptionKeys::only(old.clone()),
        "crm-gateway",
        "crm",
    )
    .await
    .unwrap();
    let issued = token(&ring).await;
    let stored = rows(&test).await;
    assert_eq!(stored.len(), 1);
    let (kid, plaintext, sealed, sealed_with) = &stored[0];
    assert_eq!(plaintext, &None, "no plaintext private key in the database");
    let sealed = sealed.as_ref().expect("the private key is stored sealed");
    assert!(!holds_plaintext(sealed));
    assert!(old.open(kid, sealed).is_ok());
    assert_eq!(sealed_with.as_deref(), Some(old.fingerprint()));

    // Another key-encryption key alone cannot open it: the gateway says
    // which key it needs instead of signing with a key it cannot read.
    let refused = KeyRing::load(
        db.clone(),
        KeyEncryptionKeys::only(new.clone()),
        "crm-gateway",
        "crm",
    )
    .await
    .err()
    .expect("a key sealed with another key-encryption key does not open");
    let message = format!("{refused:#}");
    assert!(message.contains(old.fingerprint()), "{message}");
    assert!(
        message.contains("GATEWAY_PREVIOUS_KEY_ENCRYPTION_KEY"),
        "{message}"
    );

    // With the old key as the previous one, the keys are re-sealed and the
    // tokens issued before keep working.
    let changing = KeyEncryptionKeys {
        current: new.clone(),
        previous: Some(old.clone()),
    };
    let ring = KeyRing::load(db.clone(), changing, "crm-gateway", "crm")
        .await
        .unwrap();
    ring.verify(&issued)
        .await
        .expect("earlier tokens still verify");
    let (_, _, sealed, sealed_with) = &rows(&test).await[0];
    assert_eq!(sealed_with.as_deref(), Some(new.fingerprint()));
    assert!(old.open(kid, sealed.as_ref().unwrap()).is_err());
    // From now on the new key suffices.
    let ring = KeyRing::load(
        db.clone(),
        KeyEncryptionKeys::only(new.clone()),
        "crm-gateway",
        "crm",
    )
    .await
    .unwrap();
    ring.verify(&token(&ring).await).await.unwrap();
}

#[tokio::test]
async fn keys_stored_in_plaintext_before_sealing_are_sealed_at_start() {
    let test = TestDatabase::create().await;
    let db = database(&test).await;
    let (private, _, public_raw) = kit::auth::generate_ed25519().unwrap();
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pem, public_raw) VALUES ('legacy', $1, $2)",
    )
    .bind(&private)
    .bind(public_raw.as_slice())
    .execute(&test.admin_pool().await)
    .await
    .unwrap();
    let kek = KeyEncryptionKey::generate();
    let ring = KeyRing::load(
        db,
        KeyEncryptionKeys::only(kek.clone()),
        "crm-gateway",
        "crm",
    )
    .await
    .unwrap();
    let stored = rows(&test).await;
    assert_eq!(stored.len(), 1, "the legacy key stays the active one");
    let (kid, plaintext, sealed, _) = &stored[0];
    assert_eq!((kid.as_str(), plaintext), ("legacy", &None));
    let sealed = sealed.as_ref().unwrap();
    assert!(!holds_plaintext(sealed));
    assert_eq!(kek.open("legacy", sealed).unwrap(), private.as_bytes());
    let issued = token(&ring).await;
    ring.verify(&issued)
        .await
        .expect("the sealed legacy key signs");
}
