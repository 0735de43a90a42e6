//! Servers' schedules: cron expressions (UTC) whose steps the control plane runs itself,
//! whoever is signed in or not.
//!
//! One task (`run`) sleeps until the earliest schedule falls due (or a schedule changes), then
//! claims each due time by moving `next_run_at` forward in one statement, so a time is run
//! once. A time that fell due while the control plane was down is run once when it is back if
//! it is at most `[schedules] catch_up` late (several missed times become that one run), and
//! recorded as `missed` otherwise. A schedule runs one at a time: a time that falls due while
//! its previous run goes on is `skipped`. Runs left `running` by a control plane that stopped
//! are marked failed at start.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use zlh_proto::agent::{GameState, JobState, JobView};
use zlh_proto::api::{Lifecycle, RunOutcome, ScheduleAction, ScheduleRequest, ScheduleStep};
use zlh_proto::time::{format_ms, now_ms};

use crate::ControlPlane;
use crate::db::{Schedule, StoreError};
use crate::registry::{Agent, Method, PowerAction};

/// Most steps a schedule has.
const MAX_STEPS: usize = 20;
/// Longest wait before a step.
const MAX_DELAY_SECS: u32 = 900;
/// How long a power step waits for the server to settle, and a backup step for its backup.
const SETTLE: Duration = Duration::from_secs(15 * 60);
/// How late a run may start and still count as on time (the loop wakes on the millisecond).
const ON_TIME_MS: i64 = 2_000;
/// The longest sleep between looks at the store (a safety net: changes wake the loop).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The scheduler's memory: what wakes it, and which schedules are running.
#[derive(Debug, Default)]
pub struct Scheduler {
    wake: tokio::sync::Notify,
    running: Mutex<HashSet<i64>>,
}

impl Scheduler {
    /// A schedule changed: look again.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Marks a schedule running; `false` if it already was.
    fn claim(&self, schedule_id: i64) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(schedule_id)
    }

    fn release(&self, schedule_id: i64) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&schedule_id);
    }
}

/// Why a schedule cannot be saved as asked.
pub fn check(request: &ScheduleRequest) -> Result<(), String> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("name must be 1 to 64 printable characters".into());
    }
    parse(&request.cron)?;
    if request.steps.is_empty() || request.steps.len() > MAX_STEPS {
        return Err(format!("a schedule has 1 to {MAX_STEPS} steps"));
    }
    for (n, step) in request.steps.iter().enumerate() {
        let n = n + 1;
        if step.delay_secs > MAX_DELAY_SECS {
            return Err(format!("step {n}: a step waits at most {MAX_DELAY_SECS} s"));
        }
        if step.payload.chars().count() > 1024 || step.payload.chars().any(char::is_control) {
            return Err(format!("step {n}: at most 1024 printable characters"));
        }
        match step.action {
            ScheduleAction::Command if step.payload.trim().is_empty() => {
                return Err(format!("step {n}: a command step needs the command to send"));
            }
            ScheduleAction::Backup if step.payload.chars().count() > 64 => {
                return Err(format!("step {n}: a backup's name is at most 64 characters"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse(cron: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(cron.trim()).map_err(|e| format!("cron {cron:?}: {e}"))
}

/// The expression in words.
pub fn describe(cron: &str) -> String {
    parse(cron).map(|c| c.describe()).unwrap_or_default()
}

/// When a schedule runs next after `after_ms`, if it is enabled and ever runs again.
pub fn next_after(request: &ScheduleRequest, after_ms: i64) -> Option<i64> {
    if !request.enabled {
        return None;
    }
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?;
    let next = parse(&request.cron).ok()?.find_next_occurrence(&after, false).ok()?;
    Some(next.timestamp_millis())
}

/// Runs schedules as they fall due, until the process ends.
pub async fn run(control: Arc<ControlPlane>) {
    loop {
        let sleep = match tick(&control).await {
            Ok(Some(next)) => {
                Duration::from_millis((next - now_ms()).clamp(0, MAX_SLEEP.as_millis() as i64) as u64)
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %e, "schedules: the store failed; trying again");
                Duration::from_secs(5)
            }
        };
        let _ = tokio::time::timeout(sleep, control.scheduler.wake.notified()).await;
    }
}

/// Starts what is due; when the next schedule falls due.
async fn tick(control: &Arc<ControlPlane>) -> Result<Option<i64>, StoreError> {
    let now = now_ms();
    for schedule in control.store.due_schedules(now).await? {
        let Some(due_at) = schedule.next_run_at_ms else { continue };
        let following = next_after(&schedule.request, now);
        if !control.store.advance_schedule(schedule.id, due_at, following).await? {
            continue; // changed meanwhile
        }
        let late = now - due_at;
        let catch_up = control.config.schedules.catch_up.as_millis() as i64;
        if late > catch_up {
            let detail = format!(
                "fell due at {} while the control plane was down, longer ago than [schedules] catch_up allows",
                format_ms(due_at)
            );
            control
                .store
                .record_run(schedule.id, due_at, RunOutcome::Missed, &detail, control.cluster.id())
                .await?;
            continue;
        }
        let note = (late > ON_TIME_MS).then(|| format!("ran {} s late", late / 1000));
        start(control, schedule, note).await?;
    }
    control.store.next_schedule_due().await
}

/// Starts a run of `schedule` in the background (one at a time per schedule).
pub async fn start(
    control: &Arc<ControlPlane>,
    schedule: Schedule,
    note: Option<String>,
) -> Result<(), StoreError> {
    let now = now_ms();
    if !control.scheduler.claim(schedule.id) {
        let detail = "its previous run was still going";
        control.store.record_run(schedule.id, now, RunOutcome::Skipped, detail, control.cluster.id()).await?;
        return Ok(());
    }
    let run_id = match control
        .store
        .record_run(
            schedule.id,
            now,
            RunOutcome::Running,
            note.as_deref().unwrap_or(""),
            control.cluster.id(),
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            control.scheduler.release(schedule.id);
            return Err(e);
        }
    };
    let control = Arc::clone(control);
    tokio::spawn(async move {
        let (outcome, mut detail) = match steps(&control, &schedule).await {
            Ok(Some(skipped)) => (RunOutcome::Skipped, skipped),
            Ok(None) => match schedule.request.steps.len() {
                1 => (RunOutcome::Succeeded, "done: 1 step".to_owned()),
                n => (RunOutcome::Succeeded, format!("done: {n} steps")),
            },
            Err(failed) => (RunOutcome::Failed, failed),
        };
        if let Some(note) = note {
            detail = format!("{detail} ({note})");
        }
        tracing::info!(
            server_id = schedule.server_id,
            schedule_id = schedule.id,
            outcome = outcome.as_str(),
            "schedule ran"
        );
        if let Err(e) = control.store.finish_run(run_id, now_ms(), outcome, &detail).await {
            tracing::warn!(error = %e, "could not record how a schedule's run ended");
        }
        control.scheduler.release(schedule.id);
    });
    Ok(())
}

/// Runs the steps in order: `Ok(Some(why))` when the run was skipped, `Err` naming the step
/// that failed.
async fn steps(control: &ControlPlane, schedule: &Schedule) -> Result<Option<String>, String> {
    let server = match control.store.server(schedule.server_id).await {
        Ok(Some(server)) if server.lifecycle == Lifecycle::Ready => server,
        Ok(_) => return Err("the server is being created or deleted".into()),
        Err(e) => return Err(e.to_string()),
    };
    let agent = control.registry.get(server.id).ok_or("the server's agent cannot be reached")?;
    if schedule.request.only_when_running && state(&agent).await? != GameState::Running {
        return Ok(Some("the server was not running".into()));
    }
    for (n, step) in schedule.request.steps.iter().enumerate() {
        if step.delay_secs > 0 {
            tokio::time::sleep(Duration::from_secs(step.delay_secs.into())).await;
        }
        if server.install.is_some() && matches!(step.action, ScheduleAction::Start | ScheduleAction::Restart)
        {
            return Err(format!("step {}: the server's install step has not finished", n + 1));
        }
        one(&agent, step, &schedule.request.name)
            .await
            .map_err(|why| format!("step {} ({}): {why}", n + 1, name(step.action)))?;
    }
    Ok(None)
}

fn name(action: ScheduleAction) -> &'static str {
    match action {
        ScheduleAction::Command => "command",
        ScheduleAction::Start => "start",
        ScheduleAction::Stop => "stop",
        ScheduleAction::Restart => "restart",
        ScheduleAction::Backup => "backup",
    }
}

async fn state(agent: &Arc<dyn Agent>) -> Result<GameState, String> {
    agent.status().await.map(|s| s.state).map_err(|e| e.to_string())
}

/// One step, waiting for what it started to settle.
async fn one(agent: &Arc<dyn Agent>, step: &ScheduleStep, schedule: &str) -> Result<(), String> {
    match step.action {
        ScheduleAction::Command => {
            agent.console_command(step.payload.trim()).await.map_err(|e| e.to_string())
        }
        ScheduleAction::Start => power(agent, PowerAction::Start, GameState::Running).await,
        ScheduleAction::Restart => power(agent, PowerAction::Restart, GameState::Running).await,
        ScheduleAction::Stop => power(agent, PowerAction::Stop, GameState::Stopped).await,
        ScheduleAction::Backup => {
            let name = match step.payload.trim() {
                "" => format!("{schedule} (scheduled)"),
                given => given.to_owned(),
            };
            let started = agent.call(Method::Post, "/backups", Some(json!({ "name": name }))).await;
            let job: JobView = serde_json::from_value(started.map_err(|e| e.to_string())?)
                .map_err(|_| "the agent answered something unexpected".to_owned())?;
            let deadline = tokio::time::Instant::now() + SETTLE;
            loop {
                let seen = agent.call(Method::Get, &format!("/jobs/{}", job.id), None).await;
                let job: JobView = serde_json::from_value(seen.map_err(|e| e.to_string())?)
                    .map_err(|_| "the agent answered something unexpected".to_owned())?;
                match job.state {
                    JobState::Succeeded => return Ok(()),
                    JobState::Failed => {
                        return Err(job.message.unwrap_or_else(|| "the backup failed".into()));
                    }
                    JobState::Running if tokio::time::Instant::now() > deadline => {
                        return Err("the backup did not finish in time".into());
                    }
                    JobState::Running => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
    }
}

/// A power action, then waiting until the server is `settled` (an already running server
/// asked to start, or a stopped one to stop, is already there).
async fn power(agent: &Arc<dyn Agent>, action: PowerAction, settled: GameState) -> Result<(), String> {
    if let Err(e) = agent.power(action).await
        && state(agent).await? != settled
    {
        return Err(e.to_string());
    }
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let now = state(agent).await?;
        if now == settled {
            return Ok(());
        }
        if matches!(now, GameState::Crashed | GameState::Error) && settled == GameState::Running {
            return Err(format!("the server is {}", now.as_str()));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("still {} after {} min", now.as_str(), SETTLE.as_secs() / 60));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
