use super::*;

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every test runs on both backends: SQLite in a temp dir and PostgreSQL in a fresh schema.
struct Backends {
    stores: Vec<TenantStore>,
    schema: String,
}

async fn backends() -> Backends {
    let dir = std::env::temp_dir().join(format!("pb-gateway-{}", uuid::Uuid::new_v4()));
    let sqlite = TenantStore::open(&plugboard_runtime::storage::sqlite_url(&dir, "gateway"))
        .await
        .expect("sqlite opens");
    let schema = format!("gateway_t{}", uuid::Uuid::new_v4().simple());
    let postgres = TenantStore::open_in_schema(POSTGRES_URL, &schema)
        .await
        .expect("postgres must run for tests");
    Backends {
        stores: vec![sqlite, postgres],
        schema,
    }
}

impl Backends {
    /// Drops the test's PostgreSQL schema so that runs do not pile up.
    async fn finish(self) {
        let drop = format!("DROP SCHEMA {} CASCADE", self.schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&self.stores[1].pool)
            .await
            .expect("test schema drops");
    }
}

#[tokio::test]
async fn keys_authenticate_their_tenant_only() {
    let backends = backends().await;
    for store in &backends.stores {
        store.ensure_tenant("acme", "Acme Staffing").await.unwrap();
        store.ensure_tenant("globex", "Globex").await.unwrap();
        let acme_key = generate_api_key();
        let globex_key = generate_api_key();
        store.add_api_key("acme", &acme_key, "ci").await.unwrap();
        store
            .add_api_key("globex", &globex_key, "ci")
            .await
            .unwrap();

        assert_eq!(
            store.authenticate(&acme_key).await.unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(
            store.authenticate(&globex_key).await.unwrap().as_deref(),
            Some("globex")
        );
        assert_eq!(store.authenticate(&generate_api_key()).await.unwrap(), None);
        assert_eq!(store.authenticate("").await.unwrap(), None);

        assert!(store.revoke_api_key(&acme_key).await.unwrap());
        assert_eq!(store.authenticate(&acme_key).await.unwrap(), None);
    }
    backends.finish().await;
}

#[tokio::test]
async fn adding_a_key_is_idempotent_and_checked() {
    let backends = backends().await;
    for store in &backends.stores {
        store.ensure_tenant("acme", "Acme").await.unwrap();
        // Ensuring again renames and does not fail.
        store.ensure_tenant("acme", "Acme Staffing").await.unwrap();
        store.ensure_tenant("globex", "Globex").await.unwrap();
        let key = "pb_demo_key_for_tests_0001";
        store.add_api_key("acme", key, "demo").await.unwrap();
        store.add_api_key("acme", key, "demo").await.unwrap();
        assert!(matches!(
            store.add_api_key("globex", key, "x").await,
            Err(Error::ApiKeyInUse)
        ));

        let short = store.add_api_key("acme", "short", "x").await.unwrap_err();
        assert!(matches!(short, Error::ApiKeyTooShort));
        assert!(short.to_string().contains("at least 16"));
        assert!(matches!(
            store.add_api_key("nobody", &generate_api_key(), "x").await,
            Err(Error::TenantNotFound(_))
        ));
        assert!(matches!(
            store.ensure_tenant("bad tenant", "x").await,
            Err(Error::InvalidTenantId(_))
        ));
    }
    backends.finish().await;
}

#[tokio::test]
async fn the_key_itself_is_never_stored() {
    let backends = backends().await;
    for store in &backends.stores {
        store.ensure_tenant("acme", "Acme").await.unwrap();
        let key = generate_api_key();
        store.add_api_key("acme", &key, "ci").await.unwrap();
        let rows = sqlx::query("SELECT key_hash FROM api_keys")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let stored: Vec<String> = rows.iter().map(|row| row.get("key_hash")).collect();
        assert_eq!(stored, vec![sha256_hex(&key)]);
        assert!(!stored[0].contains(&key[3..]));
    }
    backends.finish().await;
}

#[tokio::test]
async fn sessions_expire_and_end() {
    let backends = backends().await;
    for store in &backends.stores {
        store.ensure_tenant("acme", "Acme").await.unwrap();
        let key = generate_api_key();
        store.add_api_key("acme", &key, "ci").await.unwrap();
        let token = store
            .create_session("acme", &key, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.session_tenant(&token).await.unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(store.session_tenant("forged").await.unwrap(), None);
        store.delete_session(&token).await.unwrap();
        assert_eq!(store.session_tenant(&token).await.unwrap(), None);

        let expired = store
            .create_session("acme", &key, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(store.session_tenant(&expired).await.unwrap(), None);
    }
    backends.finish().await;
}

#[tokio::test]
async fn revoking_a_key_ends_the_sessions_opened_with_it_only() {
    let backends = backends().await;
    for store in &backends.stores {
        store.ensure_tenant("acme", "Acme").await.unwrap();
        let revoked = generate_api_key();
        let kept = generate_api_key();
        store.add_api_key("acme", &revoked, "old").await.unwrap();
        store.add_api_key("acme", &kept, "new").await.unwrap();
        let hour = Duration::from_secs(3600);
        let doomed = store.create_session("acme", &revoked, hour).await.unwrap();
        let also_doomed = store.create_session("acme", &revoked, hour).await.unwrap();
        let survivor = store.create_session("acme", &kept, hour).await.unwrap();

        assert!(store.revoke_api_key(&revoked).await.unwrap());
        assert_eq!(store.session_tenant(&doomed).await.unwrap(), None);
        assert_eq!(store.session_tenant(&also_doomed).await.unwrap(), None);
        assert_eq!(
            store.session_tenant(&survivor).await.unwrap().as_deref(),
            Some("acme")
        );

        // A key revoked behind the store's back (an operator's UPDATE) ends its sessions too.
        let sneaky = store.create_session("acme", &kept, hour).await.unwrap();
        sqlx::query("UPDATE api_keys SET revoked = 1 WHERE key_hash = $1")
            .bind(sha256_hex(&kept))
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.session_tenant(&sneaky).await.unwrap(), None);
    }
    backends.finish().await;
}

#[test]
fn generated_keys_are_long_prefixed_and_distinct() {
    let a = generate_api_key();
    let b = generate_api_key();
    assert!(a.starts_with("pb_"));
    assert_eq!(a.len(), 3 + 43);
    assert_ne!(a, b);
}
