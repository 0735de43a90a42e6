//! What both stores share: the names values are stored under, and reading rows into the
//! store's types (one text, instantiated for each database's row type by `row_readers!`).

use zlh_proto::api::{Lifecycle, Permission, PortProtocol, Role};

pub(super) fn role(text: &str) -> Role {
    if text == "admin" { Role::Admin } else { Role::User }
}

pub(super) fn lifecycle(text: &str) -> Lifecycle {
    match text {
        "ready" => Lifecycle::Ready,
        "deleting" => Lifecycle::Deleting,
        _ => Lifecycle::Provisioning,
    }
}

pub(super) fn lifecycle_name(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Provisioning => "provisioning",
        Lifecycle::Ready => "ready",
        Lifecycle::Deleting => "deleting",
    }
}

/// A permission list as stored.
pub(super) fn permission_list(permissions: &[Permission]) -> String {
    permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

/// A stored permission list; names this version does not know are left out.
pub(super) fn permissions_from(stored: &str) -> Vec<Permission> {
    stored.split(',').filter_map(Permission::parse).collect()
}

pub(super) fn protocol_name(protocol: PortProtocol) -> &'static str {
    match protocol {
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
        PortProtocol::Both => "both",
    }
}

pub(super) fn protocol(text: &str) -> PortProtocol {
    match text {
        "udp" => PortProtocol::Udp,
        "both" => PortProtocol::Both,
        _ => PortProtocol::Tcp,
    }
}

/// The functions that read a row of `$row` (`SqliteRow`, `PgRow`) into the store's types.
macro_rules! row_readers {
    ($row:ty) => {
        fn user_from(row: &$row) -> StoreResult<User> {
            Ok(User {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                password_hash: row.try_get("password_hash")?,
                role: role(row.try_get("role")?),
                created_at_ms: row.try_get("created_at")?,
                suspended_at_ms: row.try_get("suspended_at")?,
                email_verified_at_ms: row.try_get("email_verified_at")?,
                totp_secret: row.try_get("totp_secret")?,
                totp_enabled_at_ms: row.try_get("totp_enabled_at")?,
                password_generated: row.try_get("password_generated")?,
            })
        }

        /// A key's scope as stored (`read` or `write`).
        fn scope(row: &$row) -> StoreResult<ApiKeyScope> {
            let scope: String = row.try_get("scope")?;
            Ok(if scope == ApiKeyScope::Read.as_str() { ApiKeyScope::Read } else { ApiKeyScope::Write })
        }

        fn api_key_from(row: &$row) -> StoreResult<ApiKeyView> {
            Ok(ApiKeyView {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                scope: scope(row)?,
                prefix: row.try_get("prefix")?,
                created_at: zlh_proto::time::format_ms(row.try_get("created_at")?),
                last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(zlh_proto::time::format_ms),
            })
        }

        fn schedule_from(row: &$row) -> StoreResult<Schedule> {
            let steps: String = row.try_get("steps")?;
            Ok(Schedule {
                id: row.try_get("id")?,
                server_id: row.try_get("server_id")?,
                request: ScheduleRequest {
                    name: row.try_get("name")?,
                    cron: row.try_get("cron")?,
                    enabled: row.try_get("enabled")?,
                    only_when_running: row.try_get("only_when_running")?,
                    steps: serde_json::from_str(&steps).map_err(|e| StoreError::Database(e.to_string()))?,
                },
                next_run_at_ms: row.try_get("next_run_at")?,
            })
        }

        fn node_from(row: &$row) -> StoreResult<Node> {
            Ok(Node {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                public_address: row.try_get("public_address")?,
                first_port: row.try_get::<i64, _>("first_port")?.try_into().unwrap_or(u16::MAX),
                last_port: row.try_get::<i64, _>("last_port")?.try_into().unwrap_or(u16::MAX),
                capacity: Capacity {
                    memory_mb: row.try_get::<i64, _>("memory_mb")?.try_into().unwrap_or(u32::MAX),
                    disk_mb: row.try_get::<i64, _>("disk_mb")?.try_into().unwrap_or(u32::MAX),
                },
            })
        }

        /// Servers made from rows as they arrive, so that the database's copies of each row
        /// are freed at once rather than held for every row (at 10,000 servers, SQLite's
        /// allocator kept tens of MiB per connection that had listed them).
        async fn servers_from(
            mut rows: impl futures_util::Stream<Item = Result<$row, sqlx::Error>> + Unpin,
        ) -> StoreResult<Vec<Server>> {
            use futures_util::TryStreamExt as _;
            let mut servers = Vec::new();
            while let Some(row) = rows.try_next().await? {
                servers.push(server_from(&row)?);
            }
            Ok(servers)
        }

        fn server_from(row: &$row) -> StoreResult<Server> {
            let kind: String = row.try_get("kind")?;
            Ok(Server {
                id: row.try_get("id")?,
                owner_id: row.try_get("owner_id")?,
                name: row.try_get("name")?,
                kind: if kind == "dev" { ServerKind::Dev } else { ServerKind::Game },
                template: row.try_get("template")?,
                runtime: row.try_get("runtime")?,
                runtime_version: row.try_get("runtime_version")?,
                enable_code_server: row.try_get("enable_code_server")?,
                lifecycle: lifecycle(row.try_get("lifecycle")?),
                driver: row.try_get("driver")?,
                agent_url: Secret::new(row.try_get::<String, _>("agent_url")?),
                agent_secret: Secret::new(row.try_get::<String, _>("agent_secret")?),
                ide_upstream: Secret::new(row.try_get::<String, _>("ide_upstream")?),
                limits: row
                    .try_get::<Option<String>, _>("limits")?
                    .and_then(|text| serde_json::from_str(&text).ok()),
                install: match row.try_get::<Option<String>, _>("install_state")?.as_deref() {
                    Some("installing") => Some(InstallState::Installing),
                    Some(_) => Some(InstallState::Failed),
                    None => None,
                },
                install_message: row.try_get("install_message")?,
                node_id: row.try_get("node_id")?,
                created_at_ms: row.try_get("created_at")?,
            })
        }
    };
}
pub(super) use row_readers;
