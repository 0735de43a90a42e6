//! The SQLite store: one file in the data directory, WAL mode, migrations from
//! `migrations/sqlite`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};
use zlh_proto::Secret;
use zlh_proto::api::{
    ApiKeyRequest, ApiKeyScope, ApiKeyView, InstallState, Lifecycle, Permission, PortSpec, PortView,
    ResourceLimits, Role, RunOutcome, ScheduleRequest, ScheduleRunView, ServerKind,
};

use crate::auth::rate_limit::{GuessLog, LogUnavailable};

use super::rows::{
    lifecycle, lifecycle_name, permission_list, permissions_from, protocol, protocol_name, role,
};
use super::{
    Capacity, NewActivity, NewServer, Node, RefreshOutcome, Schedule, Server, ServerPorts, Store, StoreError,
    StoreResult, StoredTicket, User,
};

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or a plain path) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let url = if url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        MIGRATIONS.run(&pool).await.map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for copying a host between databases.
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

super::rows::row_readers!(SqliteRow);

/// Replaces a user's recovery codes within a transaction.
async fn insert_recovery_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: i64,
    code_hashes: &[Vec<u8>],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?").bind(user_id).execute(&mut **tx).await?;
    for hash in code_hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
            .bind(user_id)
            .bind(hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The tables of links mailed to people: only a user's newest link works.
#[derive(Debug, Clone, Copy)]
enum Links {
    PasswordResets,
    EmailVerifications,
}

impl Links {
    /// The statements that end a user's links, and store a new one.
    fn statements(self) -> (&'static str, &'static str) {
        match self {
            Links::PasswordResets => (
                "DELETE FROM password_resets WHERE user_id = ?",
                "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
            ),
            Links::EmailVerifications => (
                "DELETE FROM email_verifications WHERE user_id = ?",
                "INSERT INTO email_verifications (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
            ),
        }
    }
}

impl SqliteStore {
    /// Stores a link's token (hashed) as the user's only one: asking again ends the links before.
    async fn replace_link(
        &self,
        links: Links,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        let (delete, insert) = links.statements();
        let mut tx = self.pool.begin().await?;
        sqlx::query(delete).bind(user_id).execute(&mut *tx).await?;
        sqlx::query(insert).bind(token_hash).bind(user_id).bind(expires_ms).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: Role,
        email_verified: bool,
        now_ms: i64,
    ) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (email, password_hash, role, created_at, email_verified_at) \
             VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 THEN ?4 END) RETURNING *",
        )
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms)
        .bind(email_verified)
        .fetch_one(&self.pool)
        .await?;
        user_from(&row)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row =
            sqlx::query("SELECT * FROM users WHERE email = ?").bind(email).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(user_from).collect()
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?.try_get(0)?)
    }

    async fn mark_password_generated(&self, user_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_generated = 1 WHERE id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_password(&self, user_id: i64, password_hash: &str, now_ms: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = ?, password_generated = 0 WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        // A reset link sent before the change opens nothing after it.
        sqlx::query("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL")
            .bind(now_ms)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_role(&self, user_id: i64, role: Role) -> StoreResult<()> {
        sqlx::query("UPDATE users SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_user(&self, user_id: i64) -> StoreResult<()> {
        // What refers to the account goes with it (`ON DELETE CASCADE`); servers never do.
        sqlx::query("DELETE FROM users WHERE id = ?").bind(user_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn set_suspended(&self, user_id: i64, suspended_at_ms: Option<i64>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET suspended_at = ? WHERE id = ?")
            .bind(suspended_at_ms)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(now) = suspended_at_ms {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(
        &self,
        session_id: &str,
        user_id: i64,
        refresh_hash: &[u8],
        refresh_expires_ms: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(session_id)
            .bind(user_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)")
            .bind(refresh_hash)
            .bind(session_id)
            .bind(refresh_expires_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_user(&self, session_id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT users.* \
             FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE sessions.id = ? AND sessions.revoked_at IS NULL",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn rotate_refresh(
        &self,
        refresh_hash: &[u8],
        next_hash: &[u8],
        next_expires_ms: i64,
        now_ms: i64,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.pool.begin().await?;
        // The update is the check: of two concurrent uses of one token, only one matches.
        let used = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL) \
             RETURNING session_id",
        )
        .bind(now_ms)
        .bind(refresh_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match used {
            Some(row) => {
                let session_id: String = row.try_get("session_id")?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
                )
                .bind(next_hash)
                .bind(&session_id)
                .bind(next_expires_ms)
                .execute(&mut *tx)
                .await?;
                let user_id: i64 = sqlx::query("SELECT user_id FROM sessions WHERE id = ?")
                    .bind(&session_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                RefreshOutcome::Rotated { session_id, user_id }
            }
            None => {
                let known =
                    sqlx::query("SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = ?")
                        .bind(refresh_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                match known {
                    Some(row) if row.try_get::<Option<i64>, _>("used_at")?.is_some() => {
                        let session_id: String = row.try_get("session_id")?;
                        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                            .bind(now_ms)
                            .bind(&session_id)
                            .execute(&mut *tx)
                            .await?;
                        RefreshOutcome::Reused
                    }
                    _ => RefreshOutcome::Invalid,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn revoke_session(&self, session_id: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_of_refresh(&self, refresh_hash: &[u8]) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT session_id FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id \
             WHERE token_hash = ? AND sessions.revoked_at IS NULL",
        )
        .bind(refresh_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn create_password_reset(
        &self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        self.replace_link(Links::PasswordResets, token_hash, user_id, expires_ms).await
    }

    async fn use_password_reset(&self, token_hash: &[u8], now_ms: i64) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE password_resets SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
             RETURNING user_id",
        )
        .bind(now_ms)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let user_id: Option<i64> = row.map(|r| r.try_get(0)).transpose()?;
        if let Some(user_id) = user_id {
            sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?")
                .bind(now_ms)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }

    async fn create_email_verification(
        &self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        self.replace_link(Links::EmailVerifications, token_hash, user_id, expires_ms).await
    }

    async fn use_email_verification(&self, token_hash: &[u8], now_ms: i64) -> StoreResult<Option<User>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "DELETE FROM email_verifications WHERE token_hash = ? AND expires_at > ? RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: i64 = row.try_get(0)?;
        let row = sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ? RETURNING *",
        )
        .bind(now_ms)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        user_from(&row).map(Some)
    }

    async fn begin_totp(&self, user_id: i64, secret: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET totp_secret = ? WHERE id = ? AND totp_enabled_at IS NULL")
            .bind(secret)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enable_totp(
        &self,
        user_id: i64,
        step: i64,
        code_hashes: &[Vec<u8>],
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled_at = ?, totp_last_step = ? \
             WHERE id = ? AND totp_enabled_at IS NULL AND totp_secret IS NOT NULL",
        )
        .bind(now_ms)
        .bind(step)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_recovery_codes(&mut tx, user_id, code_hashes).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = ?1 WHERE id = ?2 AND (totp_last_step IS NULL OR totp_last_step < ?1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, user_id: i64, code_hashes: &[Vec<u8>]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_recovery_codes(&mut tx, user_id, code_hashes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, user_id: i64, code_hash: &[u8], now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(now_ms)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn disable_totp(&self, user_id: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL WHERE id = ?",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn set_setting(&self, name: &str, value: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_server(&self, server: NewServer, limit: Option<u32>, now_ms: i64) -> StoreResult<Server> {
        let row = sqlx::query(
            "INSERT INTO servers (owner_id, name, kind, template, runtime, runtime_version, enable_code_server, \
             lifecycle, driver, node_id, limits, created_at, replica) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'provisioning', ?8, ?9, ?10, ?11, ?15 \
             WHERE (SELECT COUNT(*) FROM servers WHERE owner_id = ?1) < ?12 \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = ?9 AND ( \
               (n.memory_mb > 0 AND ?13 + (SELECT COALESCE(SUM(json_extract(s.limits, '$.memoryMb')), 0) \
                 FROM servers s WHERE s.node_id = n.id) > n.memory_mb) \
               OR (n.disk_mb > 0 AND ?14 + (SELECT COALESCE(SUM(json_extract(s.limits, '$.diskMb')), 0) \
                 FROM servers s WHERE s.node_id = n.id) > n.disk_mb))) \
             RETURNING *",
        )
        .bind(server.owner_id)
        .bind(&server.name)
        .bind(server.kind.as_str())
        .bind(&server.template)
        .bind(&server.runtime)
        .bind(&server.runtime_version)
        .bind(server.enable_code_server)
        .bind(&server.driver)
        .bind(server.node_id)
        .bind(server.limits.map(|limits| serde_json::to_string(&limits).unwrap_or_default()))
        .bind(now_ms)
        .bind(limit.map_or(i64::MAX, i64::from))
        .bind(server.limits.map_or(0, |l| i64::from(l.memory_mb)))
        .bind(server.limits.map_or(0, |l| i64::from(l.disk_mb)))
        .bind(&server.replica)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => server_from(&row),
            None => {
                // Refused: by the owner's count, or else by the node's room.
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM servers WHERE owner_id = ?")
                    .bind(server.owner_id)
                    .fetch_one(&self.pool)
                    .await?;
                Err(if count >= limit.map_or(i64::MAX, i64::from) {
                    StoreError::LimitReached
                } else {
                    StoreError::NodeFull
                })
            }
        }
    }

    async fn set_agent(&self, server_id: i64, endpoint: &crate::registry::AgentEndpoint) -> StoreResult<()> {
        sqlx::query("UPDATE servers SET agent_url = ?, agent_secret = ?, ide_upstream = ? WHERE id = ?")
            .bind(endpoint.url.expose())
            .bind(endpoint.secret.expose())
            .bind(endpoint.ide.as_ref().map_or("", Secret::expose))
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_lifecycle(&self, server_id: i64, lifecycle: Lifecycle) -> StoreResult<()> {
        sqlx::query("UPDATE servers SET lifecycle = ? WHERE id = ?")
            .bind(lifecycle_name(lifecycle))
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn server(&self, server_id: i64) -> StoreResult<Option<Server>> {
        let row = sqlx::query("SELECT * FROM servers WHERE id = ?")
            .bind(server_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(server_from).transpose()
    }

    async fn servers(&self, owner_id: Option<i64>) -> StoreResult<Vec<Server>> {
        let query = match owner_id {
            Some(owner) => sqlx::query("SELECT * FROM servers WHERE owner_id = ? ORDER BY id").bind(owner),
            None => sqlx::query("SELECT * FROM servers ORDER BY id"),
        };
        servers_from(query.fetch(&self.pool)).await
    }

    async fn shared_servers(&self, email: &str) -> StoreResult<Vec<Server>> {
        servers_from(
            sqlx::query(
                "SELECT servers.* FROM servers JOIN server_members ON server_members.server_id = servers.id \
                 WHERE server_members.email = ? ORDER BY servers.id",
            )
            .bind(email)
            .fetch(&self.pool),
        )
        .await
    }

    async fn member_permissions(&self, server_id: i64, email: &str) -> StoreResult<Option<Vec<Permission>>> {
        let granted: Option<String> =
            sqlx::query_scalar("SELECT permissions FROM server_members WHERE server_id = ? AND email = ?")
                .bind(server_id)
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
        Ok(granted.as_deref().map(permissions_from))
    }

    async fn members(&self, server_id: i64) -> StoreResult<Vec<zlh_proto::api::MemberView>> {
        let rows = sqlx::query("SELECT * FROM server_members WHERE server_id = ? ORDER BY id")
            .bind(server_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(zlh_proto::api::MemberView {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    permissions: permissions_from(&row.try_get::<String, _>("permissions")?),
                    added_at: zlh_proto::time::format_ms(row.try_get("added_at")?),
                })
            })
            .collect()
    }

    async fn add_member(
        &self,
        server_id: i64,
        email: &str,
        permissions: &[Permission],
        now_ms: i64,
    ) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "INSERT INTO server_members (server_id, email, permissions, added_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (server_id, email) DO NOTHING RETURNING id",
        )
        .bind(server_id)
        .bind(email)
        .bind(permission_list(permissions))
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn change_member(
        &self,
        server_id: i64,
        member_id: i64,
        permissions: &[Permission],
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE server_members SET permissions = ? WHERE server_id = ? AND id = ?")
            .bind(permission_list(permissions))
            .bind(server_id)
            .bind(member_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_member(&self, server_id: i64, member_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM server_members WHERE server_id = ? AND id = ?")
            .bind(server_id)
            .bind(member_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn issue_ticket(
        &self,
        hash: &[u8],
        ticket: &StoredTicket,
        max_unspent: i64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tickets WHERE expires_at <= ?").bind(now_ms).execute(&mut *tx).await?;
        let unspent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE user_id = ?")
            .bind(ticket.user_id)
            .fetch_one(&mut *tx)
            .await?;
        if unspent >= max_unspent {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO tickets (token_hash, user_id, server_id, session_id, purpose, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash)
        .bind(ticket.user_id)
        .bind(ticket.server_id)
        .bind(&ticket.session_id)
        .bind(&ticket.purpose)
        .bind(ticket.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn take_ticket(&self, hash: &[u8], now_ms: i64) -> StoreResult<Option<StoredTicket>> {
        let row = sqlx::query("DELETE FROM tickets WHERE token_hash = ? RETURNING *")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let ticket = StoredTicket {
            user_id: row.try_get("user_id")?,
            server_id: row.try_get("server_id")?,
            session_id: row.try_get("session_id")?,
            purpose: row.try_get("purpose")?,
            expires_at_ms: row.try_get("expires_at")?,
        };
        Ok((ticket.expires_at_ms > now_ms).then_some(ticket))
    }

    async fn schedules(&self, server_id: i64) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query("SELECT * FROM schedules WHERE server_id = ? ORDER BY id")
            .bind(server_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from).collect()
    }

    async fn schedule(&self, server_id: i64, schedule_id: i64) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query("SELECT * FROM schedules WHERE server_id = ? AND id = ?")
            .bind(server_id)
            .bind(schedule_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from).transpose()
    }

    async fn insert_schedule(
        &self,
        server_id: i64,
        request: &ScheduleRequest,
        next_run_at_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Schedule> {
        let steps = serde_json::to_string(&request.steps).map_err(|e| StoreError::Database(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO schedules (server_id, name, cron, enabled, only_when_running, steps, next_run_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(server_id)
        .bind(&request.name)
        .bind(&request.cron)
        .bind(request.enabled)
        .bind(request.only_when_running)
        .bind(steps)
        .bind(next_run_at_ms)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(Schedule { id, server_id, request: request.clone(), next_run_at_ms })
    }

    async fn update_schedule(
        &self,
        schedule_id: i64,
        request: &ScheduleRequest,
        next_run_at_ms: Option<i64>,
    ) -> StoreResult<()> {
        let steps = serde_json::to_string(&request.steps).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "UPDATE schedules SET name = ?, cron = ?, enabled = ?, only_when_running = ?, steps = ?, \
             next_run_at = ? WHERE id = ?",
        )
        .bind(&request.name)
        .bind(&request.cron)
        .bind(request.enabled)
        .bind(request.only_when_running)
        .bind(steps)
        .bind(next_run_at_ms)
        .bind(schedule_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_schedule(&self, schedule_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM schedules WHERE id = ?").bind(schedule_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn due_schedules(&self, now_ms: i64) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query("SELECT * FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at, id")
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from).collect()
    }

    async fn next_schedule_due(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(next_run_at) FROM schedules").fetch_one(&self.pool).await?)
    }

    async fn advance_schedule(&self, schedule_id: i64, from: i64, to: Option<i64>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ?")
            .bind(to)
            .bind(schedule_id)
            .bind(from)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_run(
        &self,
        schedule_id: i64,
        started_at_ms: i64,
        outcome: RunOutcome,
        detail: &str,
        replica: &str,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO schedule_runs (schedule_id, started_at, outcome, detail, replica) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(schedule_id)
        .bind(started_at_ms)
        .bind(outcome.as_str())
        .bind(detail)
        .bind(replica)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM schedule_runs WHERE schedule_id = ? AND id NOT IN \
             (SELECT id FROM schedule_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?)",
        )
        .bind(schedule_id)
        .bind(schedule_id)
        .bind(super::KEPT_RUNS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn finish_run(
        &self,
        run_id: i64,
        finished_at_ms: i64,
        outcome: RunOutcome,
        detail: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE schedule_runs SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?")
            .bind(finished_at_ms)
            .bind(outcome.as_str())
            .bind(detail)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn fail_unfinished_runs(&self, now_ms: i64, live: &[String]) -> StoreResult<()> {
        sqlx::query(
            "UPDATE schedule_runs SET finished_at = ?, outcome = 'failed', \
             detail = 'the control plane stopped during this run' WHERE outcome = 'running' \
             AND (replica IS NULL OR replica NOT IN (SELECT value FROM json_each(?)))",
        )
        .bind(now_ms)
        .bind(serde_json::to_string(live).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schedule_runs(&self, schedule_id: i64) -> StoreResult<Vec<ScheduleRunView>> {
        let rows = sqlx::query("SELECT * FROM schedule_runs WHERE schedule_id = ? ORDER BY id DESC")
            .bind(schedule_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(ScheduleRunView {
                    started_at: zlh_proto::time::format_ms(row.try_get("started_at")?),
                    finished_at: row
                        .try_get::<Option<i64>, _>("finished_at")?
                        .map(zlh_proto::time::format_ms),
                    outcome: RunOutcome::parse(&outcome)
                        .ok_or_else(|| StoreError::Database(format!("unknown run outcome {outcome:?}")))?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn delete_server(&self, server_id: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM server_status WHERE server_id = ?")
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM servers WHERE id = ?").bind(server_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn spend_link(&self, jti: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        sqlx::query("DELETE FROM used_links WHERE expires_at <= ?").bind(now).execute(&self.pool).await?;
        let inserted = sqlx::query("INSERT OR IGNORE INTO used_links (jti, expires_at) VALUES (?, ?)")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn templates(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        let rows =
            sqlx::query("SELECT name, source FROM templates ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((row.try_get("name")?, row.try_get("source")?))).collect()
    }

    async fn put_template(&self, name: &str, source: Option<&str>, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO templates (name, source, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(source)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_template(&self, name: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM templates WHERE name = ?").bind(name).execute(&self.pool).await?;
        Ok(())
    }

    async fn begin_install(&self, server_id: i64, replica: &str) -> StoreResult<bool> {
        let claimed = sqlx::query(
            "UPDATE servers SET install_state = 'installing', install_message = NULL, replica = ? \
             WHERE id = ? AND (install_state IS NULL OR install_state != 'installing')",
        )
        .bind(replica)
        .bind(server_id)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn fail_orphaned_installs(&self, live: &[String], why: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE servers SET install_state = 'failed', install_message = ? WHERE install_state = 'installing' \
             AND (replica IS NULL OR replica NOT IN (SELECT value FROM json_each(?)))",
        )
        .bind(why)
        .bind(serde_json::to_string(live).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_install(
        &self,
        server_id: i64,
        state: Option<InstallState>,
        message: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE servers SET install_state = ?, install_message = ? WHERE id = ?")
            .bind(state.map(InstallState::as_str))
            .bind(message)
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_limits(&self, server_id: i64, limits: &ResourceLimits) -> StoreResult<()> {
        let text = serde_json::to_string(limits).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query("UPDATE servers SET limits = ? WHERE id = ?")
            .bind(text)
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_api_key(
        &self,
        user_id: i64,
        request: &ApiKeyRequest,
        prefix: &str,
        key_hash: &[u8],
        now_ms: i64,
    ) -> StoreResult<ApiKeyView> {
        let row = sqlx::query(
            "INSERT INTO api_keys (user_id, name, scope, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING *",
        )
        .bind(user_id)
        .bind(&request.name)
        .bind(request.scope.as_str())
        .bind(prefix)
        .bind(key_hash)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        api_key_from(&row)
    }

    async fn api_keys(&self, user_id: i64) -> StoreResult<Vec<ApiKeyView>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(api_key_from).collect()
    }

    async fn revoke_api_key(&self, user_id: i64, key_id: i64, now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn api_key_user(
        &self,
        key_hash: &[u8],
        now_ms: i64,
    ) -> StoreResult<Option<(User, i64, ApiKeyScope)>> {
        let row = sqlx::query(
            "UPDATE api_keys SET last_used_at = ? WHERE key_hash = ? AND revoked_at IS NULL RETURNING id, user_id, scope",
        )
        .bind(now_ms)
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scope = scope(&row)?;
        let user = self.user_by_id(row.try_get("user_id")?).await?;
        Ok(user.map(|user| Ok::<_, StoreError>((user, row.try_get("id")?, scope))).transpose()?)
    }

    async fn record_activity(&self, entry: NewActivity, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO activity (at, user_id, actor_id, server_id, action, address, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now_ms)
        .bind(entry.user_id)
        .bind(entry.actor_id)
        .bind(entry.server_id)
        .bind(entry.action)
        .bind(&entry.address)
        .bind(&entry.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn activity(
        &self,
        user_id: Option<i64>,
        server_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<zlh_proto::api::ActivityEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM activity WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR server_id = ?2) \
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(user_id)
        .bind(server_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(zlh_proto::api::ActivityEntry {
                    at: zlh_proto::time::format_ms(row.try_get("at")?),
                    action: row.try_get("action")?,
                    user_id: row.try_get("user_id")?,
                    actor_id: row.try_get("actor_id")?,
                    server_id: row.try_get("server_id")?,
                    address: row.try_get("address")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn upsert_node(
        &self,
        name: &str,
        public_address: &str,
        first_port: u16,
        last_port: u16,
        capacity: Capacity,
    ) -> StoreResult<Node> {
        let row = sqlx::query(
            "INSERT INTO nodes (name, public_address, first_port, last_port, memory_mb, disk_mb) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET public_address = excluded.public_address, \
             first_port = excluded.first_port, last_port = excluded.last_port, \
             memory_mb = excluded.memory_mb, disk_mb = excluded.disk_mb RETURNING *",
        )
        .bind(name)
        .bind(public_address)
        .bind(i64::from(first_port))
        .bind(i64::from(last_port))
        .bind(i64::from(capacity.memory_mb))
        .bind(i64::from(capacity.disk_mb))
        .fetch_one(&self.pool)
        .await?;
        node_from(&row)
    }

    async fn nodes(&self) -> StoreResult<Vec<Node>> {
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(node_from).collect()
    }

    async fn allocate_ports(
        &self,
        node_id: i64,
        server_id: i64,
        specs: &[PortSpec],
    ) -> StoreResult<Vec<PortView>> {
        // One statement per port picks the lowest free one and takes it; the primary key makes
        // a race between two creations a conflict, which the loser retries.
        const TAKE: &str = "WITH RECURSIVE candidates (port) AS ( \
               SELECT first_port FROM nodes WHERE id = ?1 \
               UNION ALL SELECT port + 1 FROM candidates WHERE port < (SELECT last_port FROM nodes WHERE id = ?1)) \
             INSERT INTO port_allocations (node_id, port, server_id, name, protocol, position) \
             SELECT ?1, port, ?2, ?3, ?4, ?5 FROM candidates \
             WHERE port NOT IN (SELECT port FROM port_allocations WHERE node_id = ?1) \
             ORDER BY port LIMIT 1 RETURNING port";
        let mut ports = Vec::with_capacity(specs.len());
        for (position, spec) in specs.iter().enumerate() {
            let mut attempts = 0;
            let port: i64 = loop {
                let taken = sqlx::query_scalar(TAKE)
                    .bind(node_id)
                    .bind(server_id)
                    .bind(&spec.name)
                    .bind(protocol_name(spec.protocol))
                    .bind(position as i64)
                    .fetch_optional(&self.pool)
                    .await;
                match taken.map_err(StoreError::from) {
                    Ok(Some(port)) => break port,
                    Ok(None) => return Err(StoreError::NoFreePorts),
                    Err(StoreError::Conflict) if attempts < 100 => attempts += 1,
                    Err(e) => return Err(e),
                }
            };
            let port = u16::try_from(port).map_err(|_| StoreError::Database("port out of range".into()))?;
            ports.push(PortView { name: spec.name.clone(), protocol: spec.protocol, port });
        }
        Ok(ports)
    }

    async fn ports(&self, server_ids: &[i64]) -> StoreResult<std::collections::HashMap<i64, ServerPorts>> {
        let mut found = std::collections::HashMap::new();
        if server_ids.is_empty() {
            return Ok(found);
        }
        let ids = serde_json::to_string(server_ids).map_err(|e| StoreError::Database(e.to_string()))?;
        let rows = sqlx::query(
            "SELECT a.server_id, a.port, a.name, a.protocol, n.public_address FROM port_allocations a \
             JOIN nodes n ON n.id = a.node_id WHERE a.server_id IN (SELECT value FROM json_each(?)) \
             ORDER BY a.server_id, a.position",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let entry = found
                .entry(row.try_get::<i64, _>("server_id")?)
                .or_insert_with(|| ServerPorts { public_address: String::new(), ports: Vec::new() });
            entry.public_address = row.try_get("public_address")?;
            entry.ports.push(PortView {
                name: row.try_get("name")?,
                protocol: protocol(row.try_get("protocol")?),
                port: row.try_get::<i64, _>("port")?.try_into().unwrap_or(0),
            });
        }
        Ok(found)
    }

    async fn signing_key(&self, name: &str, candidate: &str) -> StoreResult<String> {
        sqlx::query("INSERT OR IGNORE INTO signing_keys (name, key) VALUES (?, ?)")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT key FROM signing_keys WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn beat(
        &self,
        replica: &str,
        joined_at_ms: i64,
        now_ms: i64,
        dead_before_ms: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO replicas (id, joined_at_ms, beat_at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET beat_at_ms = excluded.beat_at_ms",
        )
        .bind(replica)
        .bind(joined_at_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE beat_at_ms < ?")
            .bind(dead_before_ms)
            .execute(&mut *tx)
            .await?;
        let live =
            sqlx::query_as("SELECT id, joined_at_ms FROM replicas ORDER BY id").fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(live)
    }

    async fn leave(&self, replica: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM replicas WHERE id = ?").bind(replica).execute(&self.pool).await?;
        Ok(())
    }

    async fn put_statuses(&self, statuses: &[(i64, String, i64)]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for (server_id, status, recorded_at_ms) in statuses {
            sqlx::query(
                "INSERT INTO server_status (server_id, status, recorded_at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (server_id) DO UPDATE SET status = excluded.status, \
                 recorded_at_ms = excluded.recorded_at_ms WHERE excluded.recorded_at_ms > server_status.recorded_at_ms",
            )
            .bind(server_id)
            .bind(status)
            .bind(recorded_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn statuses(
        &self,
        server_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, (String, i64)>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT server_id, status, recorded_at_ms FROM server_status \
             WHERE server_id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(server_ids).unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, status, at)| (id, (status, at))).collect())
    }

    async fn bump_generation(&self, name: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO generations (name, value) VALUES (?, 1) \
             ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn generation(&self, name: &str) -> StoreResult<i64> {
        let value = sqlx::query_scalar("SELECT value FROM generations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value.unwrap_or(0))
    }

    async fn claim_server(&self, server_id: i64, replica: &str, live: &[String]) -> StoreResult<bool> {
        let claimed = sqlx::query(
            "UPDATE servers SET replica = ? WHERE id = ? AND (replica IS NULL \
             OR replica NOT IN (SELECT value FROM json_each(?)))",
        )
        .bind(replica)
        .bind(server_id)
        .bind(serde_json::to_string(live).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }
}

#[async_trait]
impl GuessLog for SqliteStore {
    async fn record_guess(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), LogUnavailable> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM guess_failures WHERE at_ms < ?")
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO guess_failures (key, at_ms) VALUES (?, ?)")
            .bind(key)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn guesses(&self, key: &str, since_ms: i64) -> Result<Vec<i64>, LogUnavailable> {
        Ok(sqlx::query_scalar("SELECT at_ms FROM guess_failures WHERE key = ? AND at_ms >= ? ORDER BY at_ms")
            .bind(key)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn clear_guesses(&self, key: &str) -> Result<(), LogUnavailable> {
        sqlx::query("DELETE FROM guess_failures WHERE key = ?").bind(key).execute(&self.pool).await?;
        Ok(())
    }
}
