//! The store's tests, run against both implementations: SQLite in a temporary file, and
//! PostgreSQL in a database of its own on the tests' server (`cargo xtask test` starts it and
//! says where in `ZLH_TEST_POSTGRES`).

use zlh_proto::Secret;
use zlh_proto::api::{
    Permission, PortProtocol, PortSpec, Role, RunOutcome, ScheduleAction, ScheduleRequest, ScheduleStep,
    ServerKind,
};

use super::*;

/// A store and what keeps it alive.
struct Fixture {
    store: Box<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("zlh.db").display().to_string()).await.expect("open");
    Fixture { store: Box::new(store), _dir: Some(dir) }
}

async fn postgres() -> Fixture {
    let server = std::env::var("ZLH_TEST_POSTGRES").expect(
        "the store's tests need the tests' PostgreSQL: run `cargo xtask test`, or `eval \"$(cargo xtask fixtures)\"` first",
    );
    let name = format!("zlh_test_{:016x}", fastrand::u64(..));
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("the tests' PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create database");
    let store = PgStore::open(&format!("{server}/{name}")).await.expect("open");
    Fixture { store: Box::new(store), _dir: None }
}

/// Each test, once on each store.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() {
                let fixture = super::sqlite().await;
                super::$name(fixture.store.as_ref()).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $name() {
                let fixture = super::postgres().await;
                super::$name(fixture.store.as_ref()).await;
            })*
        }
    };
}

on_both!(
    users_are_unique_by_email_in_any_case,
    an_address_is_verified_by_its_newest_link_once_or_by_a_reset,
    a_totp_step_and_a_recovery_code_work_once,
    refresh_tokens_rotate_once_and_reuse_revokes_the_session,
    expired_refresh_and_reset_tokens_are_refused,
    servers_start_at_101_and_keep_their_secrets,
    what_servers_hold_round_trips,
    tickets_are_spent_once_and_expire,
    replicas_share_keys_guesses_statuses_and_unfinished_work,
);

async fn users_are_unique_by_email_in_any_case(store: &dyn Store) {
    let user = store.create_user("Ada@Example.com", "hash", Role::User, true, 1).await.expect("create");
    assert!(matches!(
        store.create_user("ada@example.COM", "h", Role::User, true, 2).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user_by_email("ADA@example.com").await.expect("get"), Some(user));
}

async fn an_address_is_verified_by_its_newest_link_once_or_by_a_reset(store: &dyn Store) {
    let user = store.create_user("a@b.c", "h", Role::User, false, 1).await.expect("user");
    assert_eq!(user.email_verified_at_ms, None);
    store.create_email_verification(b"v1", user.id, 100).await.expect("link");
    store.create_email_verification(b"v2", user.id, 100).await.expect("link");
    assert_eq!(store.use_email_verification(b"v1", 10).await.expect("use"), None, "superseded");
    assert_eq!(store.use_email_verification(b"v2", 100).await.expect("use"), None, "expired");
    store.create_email_verification(b"v3", user.id, 100).await.expect("link");
    let verified = store.use_email_verification(b"v3", 20).await.expect("use").expect("verified");
    assert_eq!(verified.email_verified_at_ms, Some(20));
    assert_eq!(store.use_email_verification(b"v3", 30).await.expect("again"), None, "single use");

    let other = store.create_user("d@e.f", "h", Role::User, false, 1).await.expect("user");
    store.create_password_reset(b"r1", other.id, 100).await.expect("reset");
    store.use_password_reset(b"r1", 40).await.expect("use");
    let other = store.user_by_id(other.id).await.expect("get").expect("user");
    assert_eq!(other.email_verified_at_ms, Some(40), "a reset link proves the address too");
}

async fn a_totp_step_and_a_recovery_code_work_once(store: &dyn Store) {
    let user = store.create_user("a@b.c", "h", Role::User, true, 1).await.expect("user");
    assert!(!store.enable_totp(user.id, 5, &[], 10).await.expect("enable"), "not enrolling");
    assert!(store.begin_totp(user.id, b"secret").await.expect("begin"));
    let codes = [b"c1".to_vec(), b"c2".to_vec()];
    assert!(store.enable_totp(user.id, 5, &codes, 10).await.expect("enable"));
    assert!(!store.begin_totp(user.id, b"other").await.expect("begin"), "on already");
    let user = store.user_by_id(user.id).await.expect("get").expect("user");
    assert!(user.has_two_factor() && user.totp_secret.as_deref() == Some(&b"secret"[..]));
    assert!(!store.use_totp_step(user.id, 5).await.expect("step"), "the confirming step is used");
    assert!(store.use_totp_step(user.id, 6).await.expect("step"));
    assert!(!store.use_totp_step(user.id, 6).await.expect("step"), "once");
    assert!(store.use_recovery_code(user.id, b"c1", 20).await.expect("code"));
    assert!(!store.use_recovery_code(user.id, b"c1", 21).await.expect("code"), "once");
    assert_eq!(store.recovery_codes_left(user.id).await.expect("left"), 1);
    store.disable_totp(user.id).await.expect("disable");
    let user = store.user_by_id(user.id).await.expect("get").expect("user");
    assert!(!user.has_two_factor() && user.totp_secret.is_none());
    assert_eq!(store.recovery_codes_left(user.id).await.expect("left"), 0);
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_session(store: &dyn Store) {
    let user = store.create_user("a@b.c", "h", Role::User, true, 1).await.expect("user");
    store.create_session("s1", user.id, b"t1", 1_000, 10).await.expect("session");
    let first = store.rotate_refresh(b"t1", b"t2", 1_000, 20).await.expect("rotate");
    assert_eq!(first, RefreshOutcome::Rotated { session_id: "s1".into(), user_id: user.id });
    assert_eq!(store.rotate_refresh(b"t1", b"t3", 1_000, 30).await.expect("reuse"), RefreshOutcome::Reused);
    assert_eq!(store.session_user("s1").await.expect("session"), None, "reuse ends the session");
    assert_eq!(store.rotate_refresh(b"t2", b"t4", 1_000, 40).await.expect("t2"), RefreshOutcome::Invalid);
    assert_eq!(
        store.rotate_refresh(b"nope", b"t5", 1_000, 40).await.expect("unknown"),
        RefreshOutcome::Invalid
    );
}

async fn expired_refresh_and_reset_tokens_are_refused(store: &dyn Store) {
    let user = store.create_user("a@b.c", "h", Role::User, true, 1).await.expect("user");
    store.create_session("s1", user.id, b"t1", 100, 10).await.expect("session");
    assert_eq!(
        store.rotate_refresh(b"t1", b"t2", 1_000, 100).await.expect("rotate"),
        RefreshOutcome::Invalid
    );
    store.create_password_reset(b"r1", user.id, 100).await.expect("reset");
    assert_eq!(store.use_password_reset(b"r1", 100).await.expect("use"), None);
    store.create_password_reset(b"r2", user.id, 100).await.expect("reset");
    assert_eq!(store.use_password_reset(b"r2", 50).await.expect("use"), Some(user.id));
    assert_eq!(store.use_password_reset(b"r2", 60).await.expect("again"), None, "single use");
    // Asking again ends the link before; changing the password ends every link.
    store.create_password_reset(b"r3", user.id, 100).await.expect("reset");
    store.create_password_reset(b"r4", user.id, 100).await.expect("reset");
    assert_eq!(store.use_password_reset(b"r3", 50).await.expect("use"), None, "superseded");
    store.set_password(user.id, "new hash", 60).await.expect("change");
    assert_eq!(store.use_password_reset(b"r4", 70).await.expect("use"), None, "ended by the change");
}

async fn servers_start_at_101_and_keep_their_secrets(store: &dyn Store) {
    let user = store.create_user("a@b.c", "h", Role::User, true, 1).await.expect("user");
    let new = NewServer {
        owner_id: user.id,
        name: "world".into(),
        kind: ServerKind::Game,
        template: Some("sample".into()),
        runtime: None,
        runtime_version: None,
        enable_code_server: false,
        driver: "local".into(),
        node_id: None,
        limits: None,
        replica: "replica-a".into(),
    };
    let server = store.insert_server(new, None, 5).await.expect("insert");
    assert_eq!(server.id, 101);
    let endpoint = crate::registry::AgentEndpoint {
        url: Secret::new("http://127.0.0.1:9"),
        secret: Secret::new("s3cret"),
        ide: Some(Secret::new("127.0.0.1:6000")),
    };
    store.set_agent(101, &endpoint).await.expect("agent");
    let server = store.server(101).await.expect("get").expect("exists");
    assert_eq!(server.agent_secret.expose(), "s3cret");
    assert_eq!(server.ide_upstream.expose(), "127.0.0.1:6000");
    assert!(!format!("{server:?}").contains("s3cret") && !format!("{server:?}").contains("127.0.0.1"));
    assert_eq!(store.servers(Some(user.id + 1)).await.expect("none"), vec![]);
}

/// Everything else a host keeps, written and read back: nodes and ports, servers with their
/// limits, installs, members and schedules, keys, activity, templates, settings, links.
async fn what_servers_hold_round_trips(store: &dyn Store) {
    let owner = store.create_user("owner@example.com", "h", Role::User, true, 1).await.expect("user");
    store.mark_password_generated(owner.id).await.expect("generated");
    assert!(store.user_by_id(owner.id).await.expect("get").expect("user").password_generated);
    let node = store
        .upsert_node("n1", "203.0.113.7", 30_000, 30_001, Capacity { memory_mb: 4096, disk_mb: 0 })
        .await
        .expect("node");
    assert_eq!(store.nodes().await.expect("nodes"), vec![node.clone()]);
    let new = |name: &str, memory: u32| NewServer {
        owner_id: owner.id,
        name: name.into(),
        kind: ServerKind::Game,
        template: Some("sample".into()),
        runtime: None,
        runtime_version: None,
        enable_code_server: true,
        driver: "docker".into(),
        node_id: Some(node.id),
        limits: Some(zlh_proto::api::ResourceLimits {
            memory_mb: memory,
            cpus: 1.5,
            pids: 64,
            io_weight: 100,
            disk_mb: 0,
        }),
        replica: "replica-a".into(),
    };
    let server = store.insert_server(new("a", 3000), Some(2), 5).await.expect("insert");
    assert!(server.enable_code_server && server.node_id == Some(node.id));
    assert_eq!(server.limits.map(|l| l.memory_mb), Some(3000));
    assert!(matches!(store.insert_server(new("b", 2000), Some(2), 6).await, Err(StoreError::NodeFull)));
    let tcp = PortSpec { name: "game".into(), protocol: PortProtocol::Tcp };
    let ports = store.allocate_ports(node.id, server.id, &[tcp.clone(), tcp.clone()]).await.expect("ports");
    assert_eq!(ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![30_000, 30_001]);
    let other = store.insert_server(new("c", 10), Some(5), 7).await.expect("insert");
    assert!(matches!(store.allocate_ports(node.id, other.id, &[tcp]).await, Err(StoreError::NoFreePorts)));
    let found = store.ports(&[server.id, other.id]).await.expect("ports");
    assert_eq!((found.len(), found[&server.id].public_address.as_str()), (1, "203.0.113.7"));
    store.set_lifecycle(server.id, Lifecycle::Ready).await.expect("lifecycle");
    assert!(
        store.begin_install(server.id, "replica-a").await.expect("install")
            && !store.begin_install(server.id, "replica-b").await.expect("again")
    );
    // An install goes on while its replica lives, and fails once it is gone.
    store.fail_orphaned_installs(&["replica-a".into()], "gone").await.expect("orphans");
    assert_eq!(
        store.server(server.id).await.expect("get").expect("server").install,
        Some(InstallState::Installing)
    );
    store.fail_orphaned_installs(&["replica-b".into()], "gone").await.expect("orphans");
    let failed = store.server(server.id).await.expect("get").expect("server");
    assert_eq!(
        (failed.install, failed.install_message.as_deref()),
        (Some(InstallState::Failed), Some("gone"))
    );
    store.set_install(server.id, Some(InstallState::Failed), Some("exit 3")).await.expect("install");
    let limits =
        zlh_proto::api::ResourceLimits { memory_mb: 512, cpus: 1.0, pids: 32, io_weight: 10, disk_mb: 100 };
    store.set_limits(server.id, &limits).await.expect("limits");
    let read = store.server(server.id).await.expect("get").expect("server");
    assert_eq!(
        (read.lifecycle, read.install, read.install_message.as_deref(), read.limits),
        (Lifecycle::Ready, Some(InstallState::Failed), Some("exit 3"), Some(limits))
    );
    assert_eq!(store.servers(Some(owner.id)).await.expect("servers").len(), 2);

    // Invitations are to addresses, compared in any case.
    let member =
        store.add_member(server.id, "Friend@Example.com", &[Permission::Console], 8).await.expect("add");
    assert!(member.is_some());
    assert_eq!(store.add_member(server.id, "friend@example.com", &[], 9).await.expect("again"), None);
    assert_eq!(
        store.member_permissions(server.id, "FRIEND@example.com").await.expect("get"),
        Some(vec![Permission::Console])
    );
    assert_eq!(store.shared_servers("friend@EXAMPLE.com").await.expect("shared").len(), 1);
    let member = member.expect("id");
    assert!(
        store
            .change_member(server.id, member, &[Permission::Files, Permission::Power])
            .await
            .expect("change")
    );
    assert_eq!(
        store.members(server.id).await.expect("members")[0].permissions,
        vec![Permission::Files, Permission::Power]
    );
    assert!(store.remove_member(server.id, member).await.expect("remove"));
    assert!(!store.remove_member(server.id, member).await.expect("again"));

    // Schedules: due, claimed once, runs kept.
    let request = ScheduleRequest {
        name: "nightly".into(),
        cron: "0 4 * * *".into(),
        enabled: true,
        only_when_running: false,
        steps: vec![ScheduleStep { action: ScheduleAction::Backup, payload: "n".into(), delay_secs: 5 }],
    };
    let schedule = store.insert_schedule(server.id, &request, Some(100), 10).await.expect("schedule");
    assert_eq!(store.schedule(server.id, schedule.id).await.expect("get"), Some(schedule.clone()));
    assert_eq!(store.next_schedule_due().await.expect("next"), Some(100));
    assert!(store.due_schedules(99).await.expect("due").is_empty());
    assert_eq!(store.due_schedules(100).await.expect("due"), vec![schedule.clone()]);
    assert!(store.advance_schedule(schedule.id, 100, Some(200)).await.expect("claim"));
    assert!(!store.advance_schedule(schedule.id, 100, Some(300)).await.expect("claimed already"));
    let run = store.record_run(schedule.id, 150, RunOutcome::Running, "", "replica-a").await.expect("run");
    store.finish_run(run, 160, RunOutcome::Succeeded, "done").await.expect("finish");
    store.record_run(schedule.id, 165, RunOutcome::Running, "", "replica-a").await.expect("run");
    store.record_run(schedule.id, 170, RunOutcome::Running, "", "replica-b").await.expect("run");
    // Only the runs of replicas that are gone failed.
    store.fail_unfinished_runs(180, &["replica-b".into()]).await.expect("fail");
    let runs = store.schedule_runs(schedule.id).await.expect("runs");
    assert_eq!(
        runs.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        vec![RunOutcome::Running, RunOutcome::Failed, RunOutcome::Succeeded]
    );
    for n in 0..super::KEPT_RUNS {
        store.record_run(schedule.id, 200 + n, RunOutcome::Skipped, "", "replica-a").await.expect("run");
    }
    assert_eq!(store.schedule_runs(schedule.id).await.expect("runs").len() as i64, super::KEPT_RUNS);
    store
        .update_schedule(schedule.id, &ScheduleRequest { enabled: false, ..request }, None)
        .await
        .expect("update");
    assert_eq!(store.schedules(server.id).await.expect("list")[0].next_run_at_ms, None);
    store.delete_schedule(schedule.id).await.expect("delete");
    assert!(store.schedules(server.id).await.expect("list").is_empty());

    // Keys, activity, templates, settings, spent links.
    let request =
        zlh_proto::api::ApiKeyRequest { name: "script".into(), scope: zlh_proto::api::ApiKeyScope::Read };
    let key = store.create_api_key(owner.id, &request, "zlh_ab", b"key hash", 20).await.expect("key");
    let (holder, key_id, _) = store.api_key_user(b"key hash", 21).await.expect("use").expect("live");
    assert_eq!((holder.id, key_id), (owner.id, key.id));
    assert!(store.revoke_api_key(owner.id, key.id, 22).await.expect("revoke"));
    assert_eq!(store.api_key_user(b"key hash", 23).await.expect("use"), None);
    let activity = NewActivity {
        user_id: owner.id,
        actor_id: None,
        server_id: Some(server.id),
        action: "power",
        address: "127.0.0.1".into(),
        detail: "start".into(),
    };
    store.record_activity(activity, 30).await.expect("record");
    assert_eq!(store.activity(None, Some(server.id), 10).await.expect("activity")[0].detail, "start");
    store.put_template("mine", Some("description = \"x\""), 40).await.expect("template");
    store.put_template("gone", None, 41).await.expect("template");
    assert_eq!(store.templates().await.expect("templates").len(), 2);
    store.forget_template("gone").await.expect("forget");
    store.set_setting("require_two_factor", "admins").await.expect("setting");
    store.set_setting("require_two_factor", "everyone").await.expect("setting");
    assert_eq!(store.setting("require_two_factor").await.expect("setting").as_deref(), Some("everyone"));
    assert!(
        store.spend_link("jti", 100, 50).await.expect("spend")
            && !store.spend_link("jti", 100, 51).await.expect("again")
    );

    // Accounts: roles, suspension, deletion (what refers to them goes too).
    store.set_role(owner.id, Role::Admin).await.expect("role");
    store.set_suspended(owner.id, Some(60)).await.expect("suspend");
    let read = store.user_by_id(owner.id).await.expect("get").expect("user");
    assert_eq!((read.role, read.suspended_at_ms), (Role::Admin, Some(60)));
    store.delete_server(server.id).await.expect("delete");
    store.delete_server(other.id).await.expect("delete");
    store.delete_user(owner.id).await.expect("delete user");
    assert_eq!(store.count_users().await.expect("count"), 0);
}

/// A ticket is spent once, whoever presents it first; an expired one opens nothing; a user
/// holds a bounded number.
async fn tickets_are_spent_once_and_expire(store: &dyn Store) {
    let user = store.create_user("t@example.com", "h", Role::User, true, 1).await.expect("user");
    let ticket = |expires_at_ms| StoredTicket {
        user_id: user.id,
        server_id: 101,
        session_id: "s1".into(),
        purpose: "console".into(),
        expires_at_ms,
    };
    assert!(store.issue_ticket(b"one", &ticket(1_000), 3, 10).await.expect("issue"));
    assert!(store.issue_ticket(b"late", &ticket(20), 3, 10).await.expect("issue"));
    assert_eq!(store.take_ticket(b"one", 500).await.expect("take"), Some(ticket(1_000)));
    assert_eq!(store.take_ticket(b"one", 501).await.expect("again"), None, "once");
    assert_eq!(store.take_ticket(b"late", 30).await.expect("late"), None, "expired");
    for n in 0..3u8 {
        assert!(store.issue_ticket(&[n], &ticket(1_000), 3, 40).await.expect("issue"));
    }
    assert!(!store.issue_ticket(b"fourth", &ticket(1_000), 3, 40).await.expect("bounded"));
    assert!(store.issue_ticket(b"fourth", &ticket(1_000), 3, 2_000).await.expect("the old expired"));
}

/// What replicas on one database share: signing keys, failed guesses, who is alive, statuses,
/// generations, and who finishes an unfinished creation.
async fn replicas_share_keys_guesses_statuses_and_unfinished_work(store: &dyn Store) {
    assert_eq!(store.signing_key("token", "first").await.expect("key"), "first");
    assert_eq!(store.signing_key("token", "second").await.expect("key"), "first", "the first one stays");

    for at in [10, 20, 30] {
        store.record_guess("email:a@b.c", at, 0).await.expect("guess");
    }
    store.record_guess("email:x@y.z", 25, 0).await.expect("guess");
    assert_eq!(store.guesses("email:a@b.c", 15).await.expect("guesses"), vec![20, 30]);
    store.record_guess("email:a@b.c", 40, 25).await.expect("guess, forgetting before 25");
    assert_eq!(store.guesses("email:a@b.c", 0).await.expect("guesses"), vec![30, 40]);
    store.clear_guesses("email:a@b.c").await.expect("clear");
    assert!(store.guesses("email:a@b.c", 0).await.expect("guesses").is_empty());
    assert_eq!(store.guesses("email:x@y.z", 0).await.expect("guesses"), vec![25], "per key");

    assert_eq!(store.beat("replica-a", 1, 100, 0).await.expect("beat"), vec![("replica-a".into(), 1)]);
    store.beat("replica-b", 50, 150, 0).await.expect("beat");
    assert_eq!(store.beat("replica-a", 1, 200, 0).await.expect("beat").len(), 2);
    // b fell silent after 150.
    assert_eq!(store.beat("replica-a", 1, 400, 160).await.expect("beat"), vec![("replica-a".into(), 1)]);
    store.beat("replica-c", 390, 400, 160).await.expect("beat");
    store.leave("replica-c").await.expect("leave");
    assert_eq!(store.beat("replica-a", 1, 410, 160).await.expect("beat").len(), 1);

    store.put_statuses(&[(101, "new".into(), 20), (102, "other".into(), 5)]).await.expect("put");
    store.put_statuses(&[(101, "old".into(), 10)]).await.expect("put older");
    let statuses = store.statuses(&[101, 102, 103]).await.expect("statuses");
    assert_eq!(statuses.get(&101), Some(&("new".to_owned(), 20)), "an older status never wins");
    assert_eq!(statuses.len(), 2);

    assert_eq!(store.generation("access").await.expect("generation"), 0);
    assert_eq!(store.bump_generation("access").await.expect("bump"), 1);
    assert_eq!(store.bump_generation("access").await.expect("bump"), 2);
    assert_eq!(store.generation("access").await.expect("generation"), 2);

    let owner = store.create_user("o@b.c", "h", Role::User, true, 1).await.expect("user");
    let server = store
        .insert_server(
            NewServer {
                owner_id: owner.id,
                name: "half made".into(),
                kind: ServerKind::Game,
                template: None,
                runtime: None,
                runtime_version: None,
                enable_code_server: false,
                driver: "local".into(),
                node_id: None,
                limits: None,
                replica: "replica-b".into(),
            },
            None,
            1,
        )
        .await
        .expect("insert");
    let live = ["replica-a".to_owned(), "replica-b".to_owned()];
    assert!(!store.claim_server(server.id, "replica-a", &live).await.expect("claim"), "b is alive");
    assert!(store.claim_server(server.id, "replica-a", &live[..1]).await.expect("claim"), "b is gone");
    assert!(!store.claim_server(server.id, "replica-c", &live[..1]).await.expect("claim"), "a has it");
    store.put_statuses(&[(server.id, "{}".into(), 1)]).await.expect("put");
    store.delete_server(server.id).await.expect("delete");
    assert!(store.statuses(&[server.id]).await.expect("statuses").is_empty(), "its status goes with it");
}
