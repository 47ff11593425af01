//! Token signing keys, shared by every gateway pod through the database.

use sqlx::PgConnection;

pub struct SigningKey {
    pub kid: String,
    pub private_pem: String,
    pub public_raw: Vec<u8>,
    pub retired: bool,
}

pub async fn insert(
    tx: &mut PgConnection,
    kid: &str,
    private_pem: &str,
    public_raw: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, private_pem, public_raw) VALUES ($1, $2, $3)")
        .bind(kid)
        .bind(private_pem)
        .bind(public_raw)
        .execute(tx)
        .await?;
    Ok(())
}

/// Keys still published: active ones and those retired less than `keep` ago,
/// newest first.
pub async fn published(tx: &mut PgConnection, keep_seconds: i64) -> sqlx::Result<Vec<SigningKey>> {
    let rows: Vec<(String, String, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT kid, private_pem, public_raw, retired_at IS NOT NULL FROM signing_keys
          WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
          ORDER BY created_at DESC",
    )
    .bind(keep_seconds as f64)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kid, private_pem, public_raw, retired)| SigningKey {
            kid,
            private_pem,
            public_raw,
            retired,
        })
        .collect())
}

pub async fn retire_all(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(tx)
        .await?;
    Ok(())
}
