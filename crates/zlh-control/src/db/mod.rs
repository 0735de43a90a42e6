//! Storage: one trait the handlers use, one implementation per database.
//!
//! SQLite (`sqlite.rs`) is the embedded default; PostgreSQL can come as a second
//! implementation with its own migrations, without touching a handler. Each implementation
//! owns its migrations (`migrations/<database>/`), versioned in the repository and applied at
//! start-up.

mod postgres;
mod rows;
mod sqlite;
#[cfg(test)]
mod tests;
pub mod transfer;

use async_trait::async_trait;
use zlh_proto::Secret;
use zlh_proto::api::{
    InstallState, Lifecycle, Permission, PortSpec, PortView, ResourceLimits, Role, RunOutcome,
    ScheduleRequest, ScheduleRunView, ServerKind,
};

/// How many runs of each schedule are kept.
pub const KEPT_RUNS: i64 = 20;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Whether a database URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The store a database URL names: PostgreSQL for `postgres://` and `postgresql://`, SQLite
/// otherwise; migrated to this version either way.
pub async fn open(url: &Secret) -> StoreResult<std::sync::Arc<dyn Store>> {
    let url = url.expose();
    Ok(if is_postgres(url) {
        std::sync::Arc::new(PgStore::open(url).await?)
    } else {
        std::sync::Arc::new(SqliteStore::open(url).await?)
    })
}

/// A user account.
#[derive(Clone, PartialEq)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Email address.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Creation time (ms since the epoch).
    pub created_at_ms: i64,
    /// Set while an admin keeps the account suspended.
    pub suspended_at_ms: Option<i64>,
    /// When the owner proved the address (self-registered accounts sign in only after).
    pub email_verified_at_ms: Option<i64>,
    /// The TOTP secret, while enrolling and once enrolled.
    pub totp_secret: Option<Vec<u8>>,
    /// Set once the owner confirmed a code: sign-in asks for one from then on.
    pub totp_enabled_at_ms: Option<i64>,
    /// The password is one ZeroLagHub generated and printed, until its owner changes it.
    pub password_generated: bool,
}

impl User {
    /// Whether signing in takes a second factor.
    pub fn has_two_factor(&self) -> bool {
        self.totp_enabled_at_ms.is_some()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish()
    }
}

/// A server row. `agent_url` and `agent_secret` stay on the backend.
#[derive(Clone, PartialEq)]
pub struct Server {
    /// Server id.
    pub id: i64,
    /// Owner's user id.
    pub owner_id: i64,
    /// Name for people.
    pub name: String,
    /// Game or dev.
    pub kind: ServerKind,
    /// Template of a game server.
    pub template: Option<String>,
    /// Runtime of a dev server.
    pub runtime: Option<String>,
    /// Runtime version of a dev server.
    pub runtime_version: Option<String>,
    /// Whether code-server is enabled.
    pub enable_code_server: bool,
    /// Control-plane lifecycle.
    pub lifecycle: Lifecycle,
    /// The provisioning driver that owns it.
    pub driver: String,
    /// Where its agent listens.
    pub agent_url: Secret,
    /// Its agent's bearer secret.
    pub agent_secret: Secret,
    /// Where a dev server's code-server listens (`host:port`), for the IDE proxy.
    pub ide_upstream: Secret,
    /// What it may use, when its driver enforces limits.
    pub limits: Option<ResourceLimits>,
    /// Its template's install step, while it runs or after it failed.
    pub install: Option<InstallState>,
    /// Why the install step failed.
    pub install_message: Option<String>,
    /// The node it runs on (`None` for servers recorded before nodes were).
    pub node_id: Option<i64>,
    /// Creation time (ms since the epoch).
    pub created_at_ms: i64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id)
            .field("owner_id", &self.owner_id)
            .field("kind", &self.kind)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

/// A server's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Its id.
    pub id: i64,
    /// The server it runs on.
    pub server_id: i64,
    /// What it says, as the owner set it.
    pub request: ScheduleRequest,
    /// When it falls due next (ms since the epoch); `None` while disabled.
    pub next_run_at_ms: Option<i64>,
}

/// A single-use ticket as stored (its token is known only to whom it was issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTicket {
    /// Whose it is.
    pub user_id: i64,
    /// The server it opens something of.
    pub server_id: i64,
    /// The account session that asked for it.
    pub session_id: String,
    /// What it opens (`console`, `download:<backup id>`).
    pub purpose: String,
    /// When it expires (ms since the epoch).
    pub expires_at_ms: i64,
}

/// What `insert_server` needs.
#[derive(Debug, Clone)]
pub struct NewServer {
    /// Owner's user id.
    pub owner_id: i64,
    /// Name for people.
    pub name: String,
    /// Game or dev.
    pub kind: ServerKind,
    /// Template of a game server.
    pub template: Option<String>,
    /// Runtime of a dev server.
    pub runtime: Option<String>,
    /// Runtime version of a dev server.
    pub runtime_version: Option<String>,
    /// Whether code-server is enabled.
    pub enable_code_server: bool,
    /// The provisioning driver.
    pub driver: String,
    /// The node it runs on (none for agents run elsewhere).
    pub node_id: Option<i64>,
    /// What it may use, when its driver enforces limits.
    pub limits: Option<ResourceLimits>,
    /// The replica creating it (another takes the creation over if it dies).
    pub replica: String,
}

/// A machine servers run on, with the range its game ports come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node id.
    pub id: i64,
    /// Its name (`local`).
    pub name: String,
    /// The address players connect to.
    pub public_address: String,
    /// The first port it hands out.
    pub first_port: u16,
    /// The last port it hands out.
    pub last_port: u16,
    /// What its servers' limits may add up to.
    pub capacity: Capacity,
}

/// One activity entry to record.
#[derive(Debug, Clone)]
pub struct NewActivity {
    /// The account it concerns.
    pub user_id: i64,
    /// Who did it, when not that account.
    pub actor_id: Option<i64>,
    /// The server it concerns.
    pub server_id: Option<i64>,
    /// What happened.
    pub action: &'static str,
    /// Where the request came from.
    pub address: String,
    /// A few words more.
    pub detail: String,
}

/// What a node's servers' limits may add up to, in MiB (0: not checked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Memory.
    pub memory_mb: u32,
    /// Disk.
    pub disk_mb: u32,
}

/// The ports of a server and the address of its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPorts {
    /// The node's public address.
    pub public_address: String,
    /// Its ports, the main one first.
    pub ports: Vec<PortView>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Valid and now used: the session continues.
    Rotated {
        /// The session the token belongs to.
        session_id: String,
        /// Its user.
        user_id: i64,
    },
    /// Already used: a copy is in someone else's hands. The session was revoked.
    Reused,
    /// Expired, revoked or never issued.
    Invalid,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (an email that is taken).
    #[error("already exists")]
    Conflict,
    /// Every port of the node's range is taken.
    #[error("every game port of this node is taken")]
    NoFreePorts,
    /// The owner already has as many servers as allowed.
    #[error("the owner has as many servers as allowed")]
    LimitReached,
    /// The node's servers would need more memory or disk than it has.
    #[error("the node has no room for a server of that size")]
    NodeFull,
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for crate::auth::rate_limit::LogUnavailable {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(error = %error, "the log of failed guesses is unavailable");
        crate::auth::rate_limit::LogUnavailable
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(error.to_string()),
        }
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the control plane keeps.
#[async_trait]
pub trait Store: crate::auth::rate_limit::GuessLog + Send + Sync + std::fmt::Debug {
    /// Creates a user, its address verified already (an operator made it) or not (it registered);
    /// `Conflict` if the email is taken.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        role: Role,
        email_verified: bool,
        now_ms: i64,
    ) -> StoreResult<User>;
    /// A user by email (case-insensitive).
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// A user by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// Every user, oldest first.
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Number of users.
    async fn count_users(&self) -> StoreResult<i64>;
    /// Replaces a password hash and ends every session of the user.
    async fn set_password(&self, user_id: i64, password_hash: &str, now_ms: i64) -> StoreResult<()>;
    /// Records that a user's password was generated and printed (a change clears it).
    async fn mark_password_generated(&self, user_id: i64) -> StoreResult<()>;
    /// Makes a user an admin or a user.
    async fn set_role(&self, user_id: i64, role: Role) -> StoreResult<()>;
    /// Deletes a user with everything that is theirs alone (sessions, keys, codes, activity);
    /// the caller makes sure they own no server.
    async fn delete_user(&self, user_id: i64) -> StoreResult<()>;
    /// Suspends (with the time) or reinstates (`None`) a user; suspension ends their sessions.
    async fn set_suspended(&self, user_id: i64, suspended_at_ms: Option<i64>) -> StoreResult<()>;

    /// Starts a session with its first refresh token.
    async fn create_session(
        &self,
        session_id: &str,
        user_id: i64,
        refresh_hash: &[u8],
        refresh_expires_ms: i64,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// The user of a live (not revoked) session.
    async fn session_user(&self, session_id: &str) -> StoreResult<Option<User>>;
    /// Uses a refresh token; on success stores its successor in the same session.
    async fn rotate_refresh(
        &self,
        refresh_hash: &[u8],
        next_hash: &[u8],
        next_expires_ms: i64,
        now_ms: i64,
    ) -> StoreResult<RefreshOutcome>;
    /// Ends a session (logout).
    async fn revoke_session(&self, session_id: &str, now_ms: i64) -> StoreResult<()>;
    /// The session a refresh token belongs to, if it is live.
    async fn session_of_refresh(&self, refresh_hash: &[u8]) -> StoreResult<Option<String>>;

    /// Stores a password reset token (hashed).
    async fn create_password_reset(
        &self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> StoreResult<()>;
    /// Uses a reset token: its user, if it was valid and unused. The link came to the address, so
    /// the address counts as verified.
    async fn use_password_reset(&self, token_hash: &[u8], now_ms: i64) -> StoreResult<Option<i64>>;
    /// Stores an email verification token (hashed); it replaces the user's earlier ones.
    async fn create_email_verification(
        &self,
        token_hash: &[u8],
        user_id: i64,
        expires_ms: i64,
    ) -> StoreResult<()>;
    /// Uses a verification token: marks its user's address verified and returns the user, if the
    /// token was valid.
    async fn use_email_verification(&self, token_hash: &[u8], now_ms: i64) -> StoreResult<Option<User>>;

    /// Starts (or restarts) TOTP enrolment with a new secret; `false` if TOTP is already on.
    async fn begin_totp(&self, user_id: i64, secret: &[u8]) -> StoreResult<bool>;
    /// Turns TOTP on (the owner confirmed a code of `step`) with fresh recovery codes (hashed);
    /// `false` if it was on already or enrolment had not begun.
    async fn enable_totp(
        &self,
        user_id: i64,
        step: i64,
        code_hashes: &[Vec<u8>],
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Accepts a code's time step once: `true` if it is newer than every step used before.
    async fn use_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool>;
    /// Replaces a user's recovery codes (hashed).
    async fn replace_recovery_codes(&self, user_id: i64, code_hashes: &[Vec<u8>]) -> StoreResult<()>;
    /// Uses a recovery code: `true` if it was the user's and unused.
    async fn use_recovery_code(&self, user_id: i64, code_hash: &[u8], now_ms: i64) -> StoreResult<bool>;
    /// Unused recovery codes of a user.
    async fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64>;
    /// Turns TOTP off and forgets the secret and the recovery codes.
    async fn disable_totp(&self, user_id: i64) -> StoreResult<()>;

    /// A host-wide setting an admin changed, if they did.
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Changes a host-wide setting.
    async fn set_setting(&self, name: &str, value: &str) -> StoreResult<()>;

    /// Creates a server row in `provisioning`.
    /// Records a new server, unless its owner already has `limit` servers (`LimitReached`;
    /// checked in the same statement, so concurrent creations cannot both slip past it).
    async fn insert_server(&self, server: NewServer, limit: Option<u32>, now_ms: i64) -> StoreResult<Server>;
    /// Records where a server's agent (and code-server) is, and the agent's secret.
    async fn set_agent(&self, server_id: i64, endpoint: &crate::registry::AgentEndpoint) -> StoreResult<()>;
    /// Moves a server along its lifecycle.
    async fn set_lifecycle(&self, server_id: i64, lifecycle: Lifecycle) -> StoreResult<()>;
    /// A server by id.
    async fn server(&self, server_id: i64) -> StoreResult<Option<Server>>;
    /// Servers of one owner, or all of them; by id.
    async fn servers(&self, owner_id: Option<i64>) -> StoreResult<Vec<Server>>;
    /// Servers whose owners invited `email`; by id.
    async fn shared_servers(&self, email: &str) -> StoreResult<Vec<Server>>;
    /// What the account with `email` may do on `server_id`, if its owner invited the address.
    async fn member_permissions(&self, server_id: i64, email: &str) -> StoreResult<Option<Vec<Permission>>>;
    /// The addresses invited to a server, in the order they were.
    async fn members(&self, server_id: i64) -> StoreResult<Vec<zlh_proto::api::MemberView>>;
    /// Invites `email` to a server; `None` if it was already.
    async fn add_member(
        &self,
        server_id: i64,
        email: &str,
        permissions: &[Permission],
        now_ms: i64,
    ) -> StoreResult<Option<i64>>;
    /// Changes what an invitation allows; whether there is one of that id on the server.
    async fn change_member(
        &self,
        server_id: i64,
        member_id: i64,
        permissions: &[Permission],
    ) -> StoreResult<bool>;
    /// Ends an invitation; whether there was one of that id on the server.
    async fn remove_member(&self, server_id: i64, member_id: i64) -> StoreResult<bool>;
    /// Keeps a ticket (by its hash), forgetting expired ones; `false` while its user holds
    /// `max_unspent` unspent ones already.
    async fn issue_ticket(
        &self,
        hash: &[u8],
        ticket: &StoredTicket,
        max_unspent: i64,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Spends a ticket: the first to present it gets it (if it has not expired), nobody after.
    async fn take_ticket(&self, hash: &[u8], now_ms: i64) -> StoreResult<Option<StoredTicket>>;
    /// A server's schedules, by id.
    async fn schedules(&self, server_id: i64) -> StoreResult<Vec<Schedule>>;
    /// One of a server's schedules.
    async fn schedule(&self, server_id: i64, schedule_id: i64) -> StoreResult<Option<Schedule>>;
    /// Adds a schedule to a server.
    async fn insert_schedule(
        &self,
        server_id: i64,
        request: &ScheduleRequest,
        next_run_at_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Schedule>;
    /// Replaces what a schedule says, and when it runs next.
    async fn update_schedule(
        &self,
        schedule_id: i64,
        request: &ScheduleRequest,
        next_run_at_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// Removes a schedule (and its runs).
    async fn delete_schedule(&self, schedule_id: i64) -> StoreResult<()>;
    /// Schedules due at `now_ms`, the earliest first.
    async fn due_schedules(&self, now_ms: i64) -> StoreResult<Vec<Schedule>>;
    /// When the next schedule falls due.
    async fn next_schedule_due(&self) -> StoreResult<Option<i64>>;
    /// Moves a schedule's next run from `from` to `to`: whether it still was `from` (so each
    /// time it falls due is claimed once).
    async fn advance_schedule(&self, schedule_id: i64, from: i64, to: Option<i64>) -> StoreResult<bool>;
    /// Records a run (keeping a schedule's latest [`KEPT_RUNS`]); its id.
    async fn record_run(
        &self,
        schedule_id: i64,
        started_at_ms: i64,
        outcome: RunOutcome,
        detail: &str,
        replica: &str,
    ) -> StoreResult<i64>;
    /// Records how a run ended.
    async fn finish_run(
        &self,
        run_id: i64,
        finished_at_ms: i64,
        outcome: RunOutcome,
        detail: &str,
    ) -> StoreResult<()>;
    /// Runs left `running` by a replica that is not in `live` (it stopped): failed, saying so.
    async fn fail_unfinished_runs(&self, now_ms: i64, live: &[String]) -> StoreResult<()>;
    /// A schedule's latest runs, newest first.
    async fn schedule_runs(&self, schedule_id: i64) -> StoreResult<Vec<ScheduleRunView>>;
    /// Removes a server row.
    async fn delete_server(&self, server_id: i64) -> StoreResult<()>;
    /// Marks an IDE link spent: `false` if it was already (spent links are kept until they
    /// expire; expired ones are forgotten here).
    async fn spend_link(&self, jti: &str, expires_at: i64, now: i64) -> StoreResult<bool>;
    /// Templates admins stored: name → the template's text, or `None` where one was removed.
    async fn templates(&self) -> StoreResult<Vec<(String, Option<String>)>>;
    /// Stores a template's text (`None`: removed, hiding one of the same name).
    async fn put_template(&self, name: &str, source: Option<&str>, now: i64) -> StoreResult<()>;
    /// Forgets a stored template (a built-in or directory one of its name shows again).
    async fn forget_template(&self, name: &str) -> StoreResult<()>;
    /// Marks a server installing (by `replica`) unless it already is; whether it was not (so
    /// one install runs at a time, however many ask at once).
    async fn begin_install(&self, server_id: i64, replica: &str) -> StoreResult<bool>;
    /// Installs left running by a replica not in `live` (it stopped): failed, saying `why`.
    async fn fail_orphaned_installs(&self, live: &[String], why: &str) -> StoreResult<()>;
    /// Records where a server's install step is (`None`: done), and why it failed.
    async fn set_install(
        &self,
        server_id: i64,
        state: Option<InstallState>,
        message: Option<&str>,
    ) -> StoreResult<()>;
    /// Records a server's new limits.
    async fn set_limits(&self, server_id: i64, limits: &ResourceLimits) -> StoreResult<()>;
    /// Keeps a new API key (its hash) for `user_id`.
    async fn create_api_key(
        &self,
        user_id: i64,
        request: &zlh_proto::api::ApiKeyRequest,
        prefix: &str,
        key_hash: &[u8],
        now_ms: i64,
    ) -> StoreResult<zlh_proto::api::ApiKeyView>;
    /// A user's keys that are not revoked.
    async fn api_keys(&self, user_id: i64) -> StoreResult<Vec<zlh_proto::api::ApiKeyView>>;
    /// Revokes one of a user's keys; whether it was theirs and live.
    async fn revoke_api_key(&self, user_id: i64, key_id: i64, now_ms: i64) -> StoreResult<bool>;
    /// The user and key a live key hash belongs to (marking it used).
    async fn api_key_user(
        &self,
        key_hash: &[u8],
        now_ms: i64,
    ) -> StoreResult<Option<(User, i64, zlh_proto::api::ApiKeyScope)>>;
    /// Records an activity entry.
    async fn record_activity(&self, entry: NewActivity, now_ms: i64) -> StoreResult<()>;
    /// The newest activity of an account (`user_id`) or of a server (`server_id`), newest first.
    async fn activity(
        &self,
        user_id: Option<i64>,
        server_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<zlh_proto::api::ActivityEntry>>;
    /// Every node.
    async fn nodes(&self) -> StoreResult<Vec<Node>>;
    /// Records a node (or updates its address and port range); returns it.
    async fn upsert_node(
        &self,
        name: &str,
        public_address: &str,
        first_port: u16,
        last_port: u16,
        capacity: Capacity,
    ) -> StoreResult<Node>;
    /// Gives a server the lowest free ports of its node's range, one per spec, in order;
    /// `NoFreePorts` when the range is used up (what was taken stays with the server, and goes
    /// with its row). Two servers never get one port, even when created at once.
    async fn allocate_ports(
        &self,
        node_id: i64,
        server_id: i64,
        specs: &[PortSpec],
    ) -> StoreResult<Vec<PortView>>;
    /// The ports of each of these servers that has any.
    async fn ports(&self, server_ids: &[i64]) -> StoreResult<std::collections::HashMap<i64, ServerPorts>>;

    // What the replicas on one database share (see `cluster`).

    /// The signing key stored as `name`, storing `candidate` when there is none yet: the first
    /// control plane to start chooses it for every replica.
    async fn signing_key(&self, name: &str, candidate: &str) -> StoreResult<String>;
    /// Records that `replica` (which joined at `joined_at_ms`) is alive, forgets replicas
    /// silent since before `dead_before_ms`, and returns the live ones: id and when it joined.
    async fn beat(
        &self,
        replica: &str,
        joined_at_ms: i64,
        now_ms: i64,
        dead_before_ms: i64,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Forgets a replica that stops.
    async fn leave(&self, replica: &str) -> StoreResult<()>;
    /// Stores servers' statuses: (server id, status as JSON, when it was recorded); an older
    /// status never replaces a newer one.
    async fn put_statuses(&self, statuses: &[(i64, String, i64)]) -> StoreResult<()>;
    /// The stored statuses of these servers: id → (status as JSON, when it was recorded).
    async fn statuses(
        &self,
        server_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, (String, i64)>>;
    /// Adds one to a named counter; its new value.
    async fn bump_generation(&self, name: &str) -> StoreResult<i64>;
    /// A named counter (0 until first bumped).
    async fn generation(&self, name: &str) -> StoreResult<i64>;
    /// Makes `replica` the one finishing a server's creation or deletion unless a replica in
    /// `live` is (pass none to take it); whether it now is.
    async fn claim_server(&self, server_id: i64, replica: &str, live: &[String]) -> StoreResult<bool>;
}
