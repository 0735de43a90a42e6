//! The control plane's public API: what browsers, the portal and API clients send and receive.
//!
//! Responses are camelCase like the agent's. The create payload keeps the original platform's
//! snake_case names (`enable_code_server`) and accepts the camelCase spelling too. Nothing here
//! can carry an agent's address or secret: the browser names servers by id only.

use serde::{Deserialize, Serialize};

use crate::agent::{CrashClassification, GameState, StatusSnapshot};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A customer: sees and manages their own servers.
    User,
    /// The operator: sees every user and server.
    Admin,
}

impl Role {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// `POST /api/auth/register` and `POST /api/auth/login`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    /// Email address (case-insensitive).
    pub email: String,
    /// Password (at least 10 characters).
    pub password: String,
    /// At sign-in, for an account with two-factor sign-in: the code of its authenticator app, or
    /// one of its recovery codes.
    #[serde(default, rename = "totpCode", skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("password", &"[redacted]").finish()
    }
}

/// The account's password again, for what a stolen session must not do alone (turning
/// two-factor sign-in on or off, new recovery codes).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordConfirmation {
    /// The current password.
    pub password: String,
}

impl std::fmt::Debug for PasswordConfirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordConfirmation([redacted])")
    }
}

/// Two-factor sign-in of the account, `GET /api/account/totp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorStatus {
    /// Whether sign-in asks for a code.
    pub enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Whether this host requires it of this account (it cannot be turned off).
    pub required: bool,
}

/// What an authenticator app needs, `POST /api/account/totp`: shown once, until confirmed.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://totp/…` URL.
    pub otpauth_url: String,
    /// A QR code of the URL, as an SVG document.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment([redacted])")
    }
}

/// A code from the authenticator app, `POST /api/account/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpCode {
    /// Six digits.
    pub code: String,
}

/// Recovery codes, shown once: each signs in once instead of a code.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodes {
    /// The codes.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodes([redacted])")
    }
}

/// Whose accounts must sign in with a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TwoFactorPolicy {
    /// Nobody's (each person chooses).
    #[default]
    None,
    /// Administrators'.
    Admins,
    /// Everyone's.
    Everyone,
}

impl TwoFactorPolicy {
    /// The name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            TwoFactorPolicy::None => "none",
            TwoFactorPolicy::Admins => "admins",
            TwoFactorPolicy::Everyone => "everyone",
        }
    }

    /// Whether it asks a second factor of an account with this role.
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            TwoFactorPolicy::None => false,
            TwoFactorPolicy::Admins => role == Role::Admin,
            TwoFactorPolicy::Everyone => true,
        }
    }
}

/// Host-wide settings admins change while the host runs, `/api/admin/settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HostSettings {
    /// Whose accounts must sign in with a second factor; until they set it up, they can do
    /// nothing but that.
    pub require_two_factor: TwoFactorPolicy,
}

/// The answer to `POST /api/auth/register`: the same whether or not the address has an account
/// (a link to confirm it, or a note that it has one, went to the address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationStarted {
    /// Where the message went.
    pub email: String,
}

/// `POST /api/auth/verify-email`: the token from the message sent at registration.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailVerification {
    /// The token from the message.
    pub token: String,
}

impl std::fmt::Debug for EmailVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailVerification([redacted])")
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User id.
    pub id: i64,
    /// Email address.
    pub email: String,
    /// Role.
    pub role: Role,
    /// When the account was created (RFC 3339).
    pub created_at: String,
    /// Whether an admin suspended the account.
    pub suspended: bool,
    /// Whether the owner proved the email address.
    pub email_verified: bool,
    /// Whether sign-in asks for a second factor.
    pub two_factor: bool,
    /// The password was generated and printed (the first admin of `zlh up`): the portal asks
    /// for one of the owner's own until it is changed.
    #[serde(default)]
    pub password_generated: bool,
}

/// `POST /api/admin/users`: an account an admin makes (its address counts as confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email address.
    pub email: String,
    /// `user` or `admin`.
    pub role: Role,
}

/// The answer to `POST /api/admin/users`: the account and its generated password, shown
/// once (its owner is asked for one of their own at first sign-in).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    /// The account.
    pub user: UserView,
    /// Its first password.
    pub password: String,
}

impl std::fmt::Debug for CreatedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedUser").field("user", &self.user).field("password", &"[redacted]").finish()
    }
}

/// `PATCH /api/admin/users/{userId}`: a new role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// `user` or `admin`.
    pub role: Role,
}

/// `GET /api/auth/registration`: whether anyone may create an account here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registration {
    /// Sign-up is open.
    pub open: bool,
}

/// Tokens after sign-in, registration or refresh.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Short-lived bearer token for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /api/auth/refresh`; each use returns a new one.
    pub refresh_token: String,
    /// The signed-in user.
    pub user: UserView,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("user", &self.user).finish_non_exhaustive()
    }
}

/// A session as a cookie-session client (`X-ZLH-Session: cookie`, the portal) gets it: the
/// tokens are `HttpOnly` cookies, out of reach of the page's scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CookieSession {
    /// Seconds until the access cookie expires (then `POST /api/auth/refresh`).
    pub expires_in: u64,
    /// The signed-in user.
    pub user: UserView,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token from the last session; a cookie-session client (`X-ZLH-Session:
    /// cookie`) leaves it out and its cookie is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest([redacted])")
    }
}

/// `POST /api/auth/password`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 10 characters).
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChange([redacted])")
    }
}

/// `POST /api/auth/password-reset/request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetRequest {
    /// The account's email address.
    pub email: String,
}

/// `POST /api/auth/password-reset/confirm`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResetConfirm {
    /// The token from the reset message.
    pub token: String,
    /// The new password (at least 10 characters).
    pub new_password: String,
}

impl std::fmt::Debug for ResetConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetConfirm([redacted])")
    }
}

/// What a server is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// A game server from a template.
    Game,
    /// A development container with runtimes and code-server.
    Dev,
}

impl ServerKind {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Game => "game",
            ServerKind::Dev => "dev",
        }
    }
}

/// `POST /api/servers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateServer {
    /// A name for people.
    pub name: String,
    /// `game` or `dev`.
    #[serde(rename = "type")]
    pub kind: ServerKind,
    /// Game servers: the template (`GET /api/templates`).
    #[serde(default)]
    pub template: Option<String>,
    /// The `custom` template: program and arguments.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The `custom` template: the line that means "ready" (a regex).
    #[serde(default)]
    pub ready_pattern: Option<String>,
    /// Dev servers: the runtime (`GET /api/dev/runtimes`).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Dev servers: the runtime's version.
    #[serde(default)]
    pub version: Option<String>,
    /// Dev servers: install and run code-server.
    #[serde(default, alias = "enableCodeServer")]
    pub enable_code_server: bool,
    /// What it may use, within what the operator allows (the template's defaults otherwise).
    #[serde(default)]
    pub limits: Option<LimitsRequest>,
    /// Game servers: start it once it is created (and installed). Otherwise it stays stopped,
    /// so files can be uploaded first.
    #[serde(default)]
    pub start: bool,
    /// Game servers: one of the template's images (its label or reference); its first when
    /// absent.
    #[serde(default)]
    pub image: Option<String>,
    /// Game servers: values for the template's editable variables (env name → value).
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
}

/// What a server may use, enforced by the kernel (container drivers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// Memory in MiB, swap included.
    pub memory_mb: u32,
    /// CPUs (1.5 = one and a half cores).
    pub cpus: f64,
    /// Processes and threads.
    pub pids: u32,
    /// Block IO weight, 10 to 1000.
    pub io_weight: u16,
    /// Disk space in MiB for everything the server keeps (its files, backups, the agent's
    /// state). Set at creation. Servers made before disk quotas have none (`0`).
    #[serde(default)]
    pub disk_mb: u32,
}

/// Limits asked for at creation or changed later; what is left out stays as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsRequest {
    /// Memory in MiB.
    #[serde(default, alias = "memory_mb")]
    pub memory_mb: Option<u32>,
    /// CPUs.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Processes and threads.
    #[serde(default)]
    pub pids: Option<u32>,
    /// Block IO weight.
    #[serde(default, alias = "io_weight")]
    pub io_weight: Option<u16>,
    /// Disk space in MiB (only at creation).
    #[serde(default, alias = "disk_mb")]
    pub disk_mb: Option<u32>,
}

impl ResourceLimits {
    /// These limits with what `request` asks for instead.
    pub fn with(self, request: &LimitsRequest) -> ResourceLimits {
        ResourceLimits {
            memory_mb: request.memory_mb.unwrap_or(self.memory_mb),
            cpus: request.cpus.unwrap_or(self.cpus),
            pids: request.pids.unwrap_or(self.pids),
            io_weight: request.io_weight.unwrap_or(self.io_weight),
            disk_mb: request.disk_mb.unwrap_or(self.disk_mb),
        }
    }
}

/// Where a server is in the control plane's own lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Being created: its agent is starting or not ready yet.
    Provisioning,
    /// Created; its agent reported ready once.
    Ready,
    /// Being deleted.
    Deleting,
}

/// The normalized state the poller caches, as `GET /api/servers/:id/status` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The server's state as its agent last reported it (`null` before the first poll).
    pub state: Option<GameState>,
    /// Semantic readiness as its agent last reported it.
    pub ready: bool,
    /// Why (not) ready, or why the agent cannot be reached.
    pub reason: String,
    /// The last poll failed: `state` is the last one known.
    pub unreachable: bool,
    /// When the agent last answered (RFC 3339).
    pub last_seen: Option<String>,
    /// The most recent crash's classification.
    pub last_crash_classification: Option<CrashClassification>,
    /// The agent's whole snapshot from its last answer.
    pub detail: Option<StatusSnapshot>,
}

/// A server as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    /// Server id (also the `dev-<id>` host of dev servers).
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `game` or `dev`.
    #[serde(rename = "type")]
    pub kind: ServerKind,
    /// Template of a game server.
    pub template: Option<String>,
    /// Runtime of a dev server.
    pub runtime: Option<String>,
    /// Runtime version of a dev server.
    pub version: Option<String>,
    /// Whether code-server is enabled.
    pub enable_code_server: bool,
    /// The owner's user id.
    pub owner_id: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Control-plane lifecycle.
    pub lifecycle: Lifecycle,
    /// Cached state.
    pub status: ServerStatus,
    /// The ports allocated to it, the first one the game's main port.
    pub ports: Vec<PortView>,
    /// Where players connect (`host:port` of the first port), when it has ports.
    pub address: Option<String>,
    /// What it may use, when its driver enforces limits (`null` on the local driver).
    pub limits: Option<ResourceLimits>,
    /// The template's install step, while it runs or after it failed (`null` once done).
    pub install: Option<InstallState>,
    /// The node it runs on.
    #[serde(default)]
    pub node: Option<String>,
    /// What the asking account may do on it: everything for its owner (and admins), what the
    /// owner granted for an invited account.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// Something an account may do on a server. Its owner (and any admin) may do all of it; an
/// account the owner invites, what the owner picked. Seeing the server, its state, usage and
/// activity comes with any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the console and send commands.
    Console,
    /// Start, stop, restart, kill.
    Power,
    /// Files and mods.
    Files,
    /// Create, restore, download, lock and delete backups.
    Backups,
    /// Open the browser IDE of a dev server, start and stop its code-server.
    Ide,
    /// See and change the server's schedules.
    Schedules,
    /// The owner's own: settings, limits, members, deleting the server. Never granted.
    Manage,
}

impl Permission {
    /// What an owner may grant.
    pub const GRANTABLE: [Permission; 6] = [
        Permission::Console,
        Permission::Power,
        Permission::Files,
        Permission::Backups,
        Permission::Ide,
        Permission::Schedules,
    ];

    /// Everything: what an owner and an admin hold.
    pub fn all() -> Vec<Permission> {
        let mut all = Permission::GRANTABLE.to_vec();
        all.push(Permission::Manage);
        all
    }

    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Console => "console",
            Permission::Power => "power",
            Permission::Files => "files",
            Permission::Backups => "backups",
            Permission::Ide => "ide",
            Permission::Schedules => "schedules",
            Permission::Manage => "manage",
        }
    }

    /// The permission named `name`.
    pub fn parse(name: &str) -> Option<Permission> {
        Permission::all().into_iter().find(|p| p.as_str() == name)
    }
}

/// What one step of a schedule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScheduleAction {
    /// Send `payload` to the console (the server must be running).
    Command,
    /// Start the server and wait until it is running.
    Start,
    /// Stop the server and wait until it is stopped.
    Stop,
    /// Restart the server and wait until it is running again.
    Restart,
    /// Take a backup (named `payload`, if given) and wait for it.
    Backup,
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleStep {
    /// What it does.
    pub action: ScheduleAction,
    /// The command of a `command` step, the name of a `backup` step's backup.
    #[serde(default)]
    pub payload: String,
    /// Seconds to wait before this step (at most 900).
    #[serde(default)]
    pub delay_secs: u32,
}

/// `POST /api/servers/{id}/schedules` and `PUT …/schedules/{scheduleId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleRequest {
    /// A name for people.
    pub name: String,
    /// When it runs, in UTC: a cron expression of five fields (minute hour day-of-month month
    /// day-of-week), or six with seconds first.
    pub cron: String,
    /// Whether it runs at its times (a disabled schedule still runs when asked to).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Skip a run (recorded as `skipped`) when the server is not running.
    #[serde(default)]
    pub only_when_running: bool,
    /// What it does, in order (1 to 20 steps); a failing step ends the run.
    pub steps: Vec<ScheduleStep>,
}

fn yes() -> bool {
    true
}

/// How a schedule's run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still going.
    Running,
    /// Every step did what it should.
    Succeeded,
    /// A step failed (the detail says which and why); later steps did not run.
    Failed,
    /// Not run: the server was not running and the schedule runs only when it is.
    Skipped,
    /// Not run: it fell due while the control plane was down, longer ago than
    /// `[schedules] catch_up`.
    Missed,
}

impl RunOutcome {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Missed => "missed",
        }
    }

    /// The outcome named `name`.
    pub fn parse(name: &str) -> Option<RunOutcome> {
        [
            RunOutcome::Running,
            RunOutcome::Succeeded,
            RunOutcome::Failed,
            RunOutcome::Skipped,
            RunOutcome::Missed,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRunView {
    /// When it started, or fell due for a missed one (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// How it went.
    pub outcome: RunOutcome,
    /// What happened, in a few words.
    pub detail: String,
}

/// A schedule, with its next time and latest runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Its id.
    pub id: i64,
    /// A name for people.
    pub name: String,
    /// Its cron expression (UTC).
    pub cron: String,
    /// The expression in words.
    pub description: String,
    /// Whether it runs at its times.
    pub enabled: bool,
    /// Whether a run is skipped while the server is not running.
    pub only_when_running: bool,
    /// Its steps.
    pub steps: Vec<ScheduleStep>,
    /// When it runs next (RFC 3339), while enabled.
    pub next_run_at: Option<String>,
    /// Its latest runs, newest first.
    pub runs: Vec<ScheduleRunView>,
}

/// One file of the artifact store (`GET /api/admin/artifacts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    /// `runtime`, `addon` or `mod`.
    pub kind: String,
    /// Package name (`node`, `code-server`, a mod's id).
    pub name: String,
    /// Version.
    pub version: String,
    /// Where agents fetch it, relative to the catalog.
    pub url: String,
    /// SHA-256 of the file (agents check it).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A single-use link for a browser to download something (`url` is relative to the portal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DownloadLink {
    /// Where to download it from (once).
    pub url: String,
    /// Seconds until the link expires.
    pub expires_in: u64,
}

/// An address invited to a server (`GET /api/servers/{id}/members`). Whether an account uses
/// it is not said: the invitation holds for whoever signs in with it, once they proved it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The invitation's id.
    pub id: i64,
    /// The address invited.
    pub email: String,
    /// What it may do on the server.
    pub permissions: Vec<Permission>,
    /// When it was invited (RFC 3339).
    pub added_at: String,
}

/// `POST /api/servers/{id}/members`: invite an email address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    /// The address (an account that uses it, now or later, gets the access).
    pub email: String,
    /// What it may do: any of `console`, `power`, `files`, `backups`, `ide`, `schedules`.
    pub permissions: Vec<Permission>,
}

/// `PUT /api/servers/{id}/members/{memberId}`: what an invited account may do from now on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberPermissions {
    /// Any of `console`, `power`, `files`, `backups`, `ide`, `schedules`.
    pub permissions: Vec<Permission>,
}

/// Where a server's install step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstallState {
    /// Running; the server cannot start yet.
    Installing,
    /// Failed; it can be retried (`POST /api/servers/{id}/install`).
    Failed,
}

impl InstallState {
    /// Its name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallState::Installing => "installing",
            InstallState::Failed => "failed",
        }
    }
}

/// `GET /api/servers/{id}/install`: the install step's state and output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstallView {
    /// `null` once it succeeded (or when the template has none).
    pub state: Option<InstallState>,
    /// Why it failed.
    pub message: Option<String>,
    /// Its output (the last 64 KiB).
    pub log: String,
}

/// Which transport a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PortProtocol {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both.
    Both,
}

/// A port a template needs, by name (`game`, `query`, `rcon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Its name: the game gets it as `{port.<name>}` in its arguments and environment.
    pub name: String,
    /// Its transport.
    pub protocol: PortProtocol,
}

/// A port allocated to a server on its node's public address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortView {
    /// Its name in the template.
    pub name: String,
    /// Its transport.
    pub protocol: PortProtocol,
    /// The port number.
    pub port: u16,
}

/// `POST /api/servers/:id/console/ticket`: a single-use pass for the console WebSocket
/// (browsers cannot set headers on a WebSocket).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConsoleTicket {
    /// Pass it as `?ticket=` on `GET /api/servers/:id/console`.
    pub ticket: String,
    /// It is refused after this many seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for ConsoleTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleTicket").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// A game template from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateView {
    /// The name to create servers with.
    pub name: String,
    /// What it runs.
    pub description: String,
    /// The images a server may run in, the default first.
    #[serde(default)]
    pub images: Vec<ImageChoice>,
    /// What an owner can see and set, with the defaults as values.
    #[serde(default)]
    pub variables: Vec<VariableView>,
    /// Whether an install step runs before the first start.
    #[serde(default)]
    pub install: bool,
    /// Files the owner uploads before the first start.
    #[serde(default)]
    pub required_files: Vec<String>,
}

/// Where a template comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateOrigin {
    /// Shipped with ZeroLagHub.
    BuiltIn,
    /// A file of the operator's templates directory.
    Directory,
    /// Imported or changed by an admin through the API (kept in the database).
    Stored,
}

/// A template as admins see it (`GET /api/admin/templates/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminTemplateView {
    /// Its name.
    pub name: String,
    /// What it runs.
    pub description: String,
    /// Where it comes from.
    pub origin: TemplateOrigin,
    /// The built-in or directory template of the same name it replaces (or hides, when removed).
    pub replaces: Option<TemplateOrigin>,
    /// Removed by an admin: not offered (`POST …/restore` brings back the one it hides).
    pub removed: bool,
    /// The template file (TOML); empty in lists and for removed ones.
    pub source: String,
}

/// `PUT /api/admin/templates/{name}`: a template file (TOML), checked before it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutTemplate {
    /// The template file (TOML).
    pub source: String,
}

/// `POST /api/admin/templates/import`: an egg (its text, or a URL to fetch it from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportEgg {
    /// The egg file's text (JSON or YAML).
    #[serde(default)]
    pub egg: Option<String>,
    /// Where to fetch it (`http`/`https`), instead of `egg`.
    #[serde(default)]
    pub url: Option<String>,
    /// The template's name (default: made from the egg's).
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer to an import: the template, and what of the egg it does not carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportedTemplate {
    /// The new template.
    pub template: AdminTemplateView,
    /// What the egg asks for that is not carried out, one line each.
    pub notes: Vec<String>,
}

/// An image a template offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageChoice {
    /// For people (`Java 21`).
    pub label: String,
    /// The image reference.
    pub image: String,
}

/// A variable of a template or a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariableView {
    /// For people.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its environment name, the key to set it by.
    pub env: String,
    /// The value (the server's, or the template's default).
    pub value: String,
    /// The template's default.
    pub default: String,
    /// Whether the owner may change it.
    pub editable: bool,
    /// What a value must satisfy (`required`, `max:32`).
    pub rules: Vec<String>,
}

/// `PUT /api/servers/{id}/variables`: new values, applied at the next start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetVariables {
    /// Env name → value; variables left out keep theirs.
    pub values: std::collections::BTreeMap<String, String>,
}

/// A runtime the portal can offer (`GET /api/dev/runtimes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuntimeChoice {
    /// Runtime name (`node`).
    pub name: String,
    /// For people.
    pub description: String,
    /// Available versions, newest first.
    pub versions: Vec<String>,
}

/// `POST /api/dev/{id}/ide-token`: a short-lived, single-use link to the IDE.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct IdeLink {
    /// The token (also inside `url`).
    pub token: String,
    /// The URL to open in a new tab.
    pub url: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for IdeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdeLink").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// One entry of an account's or a server's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ActivityEntry {
    /// When (RFC 3339, milliseconds).
    pub at: String,
    /// What happened (`sign_in`, `sign_in_failed`, `power_stop`, `files_changed`, ...).
    pub action: String,
    /// The account it concerns.
    pub user_id: i64,
    /// Who did it, when someone else did (an admin).
    pub actor_id: Option<i64>,
    /// The server it concerns.
    pub server_id: Option<i64>,
    /// The address the request came from.
    pub address: String,
    /// A few words more (the route of a file change, the power action), never a secret.
    pub detail: String,
}

/// What a personal API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// Read only (`GET`).
    Read,
    /// Everything its owner may do, but the account itself (password, keys), consoles and IDEs.
    Write,
}

impl ApiKeyScope {
    /// Its name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Read => "read",
            ApiKeyScope::Write => "write",
        }
    }
}

/// `POST /api/account/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// A name to tell it apart (`backup script`).
    pub name: String,
    /// What it may do.
    pub scope: ApiKeyScope,
}

/// A personal API key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Key id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scope: ApiKeyScope,
    /// Its first characters (`zlh_AbCd`).
    pub prefix: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was last used.
    pub last_used_at: Option<String>,
}

/// A new key: the only answer that carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    /// The key: `Authorization: Bearer <key>`. Shown once; only a hash of it is kept.
    pub key: String,
    /// The key as it will be listed.
    #[serde(flatten)]
    pub view: ApiKeyView,
}
