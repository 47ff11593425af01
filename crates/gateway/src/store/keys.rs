//! Token signing keys, shared by every gateway pod through the database.
//! The private half is stored sealed (see [`crate::sealing`]).

use sqlx::PgConnection;

pub struct StoredKey {
    pub kid: String,
    /// Written before keys were sealed; sealed at the next start.
    pub plaintext_pem: Option<String>,
    pub sealed_private: Option<Vec<u8>>,
    /// Fingerprint of the key-encryption key that sealed `sealed_private`.
    pub sealed_with: Option<String>,
    pub public_raw: Vec<u8>,
    pub retired: bool,
}

pub async fn insert(
    tx: &mut PgConnection,
    kid: &str,
    sealed_private: &[u8],
    sealed_with: &str,
    public_raw: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, sealed_private, sealed_with, public_raw)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(kid)
    .bind(sealed_private)
    .bind(sealed_with)
    .bind(public_raw)
    .execute(tx)
    .await?;
    Ok(())
}

/// Replaces a key's private half by its sealed form (sealing a plaintext
/// key, or re-sealing with a new key-encryption key).
pub async fn reseal(
    tx: &mut PgConnection,
    kid: &str,
    sealed_private: &[u8],
    sealed_with: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE signing_keys SET private_pem = NULL, sealed_private = $2, sealed_with = $3
          WHERE kid = $1",
    )
    .bind(kid)
    .bind(sealed_private)
    .bind(sealed_with)
    .execute(tx)
    .await?;
    Ok(())
}

type Row = (
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
    Vec<u8>,
    bool,
);

const COLUMNS: &str =
    "kid, private_pem, sealed_private, sealed_with, public_raw, retired_at IS NOT NULL";

/// Keys still published: active ones and those retired less than `keep` ago,
/// newest first.
pub async fn published(tx: &mut PgConnection, keep_seconds: i64) -> sqlx::Result<Vec<StoredKey>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM signing_keys
          WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
          ORDER BY created_at DESC"
    ))
    .bind(keep_seconds as f64)
    .fetch_all(tx)
    .await?;
    Ok(into_keys(rows))
}

/// Every key, published or not, not sealed with the key-encryption key
/// `current`: plaintext ones and those sealed with an earlier key.
pub async fn not_sealed_with(tx: &mut PgConnection, current: &str) -> sqlx::Result<Vec<StoredKey>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM signing_keys WHERE sealed_with IS DISTINCT FROM $1"
    ))
    .bind(current)
    .fetch_all(tx)
    .await?;
    Ok(into_keys(rows))
}

fn into_keys(rows: Vec<Row>) -> Vec<StoredKey> {
    rows.into_iter()
        .map(
            |(kid, plaintext_pem, sealed_private, sealed_with, public_raw, retired)| StoredKey {
                kid,
                plaintext_pem,
                sealed_private,
                sealed_with,
                public_raw,
                retired,
            },
        )
        .collect()
}

pub async fn retire_all(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(tx)
        .await?;
    Ok(())
}
