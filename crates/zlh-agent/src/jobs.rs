//! Background jobs: long work (installs, and later backups and archives) runs off the request,
//! with progress anyone can read at `GET /jobs/{id}`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use zlh_proto::agent::{JobKind, JobState, JobView};

use crate::clock::{format_ms, now_ms};

/// How many finished jobs are remembered.
const HISTORY: usize = 100;

/// Every recent job.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<VecDeque<Arc<Mutex<JobView>>>>,
}

/// The running side of a job: reports progress.
#[derive(Debug, Clone)]
pub struct Progress {
    view: Arc<Mutex<JobView>>,
}

impl Progress {
    fn update(&self, change: impl FnOnce(&mut JobView)) {
        change(&mut self.view.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Sets how much is done of how much.
    pub fn set(&self, done: u64, total: Option<u64>) {
        self.update(|job| {
            job.done = done;
            job.total = total;
        });
    }

    /// Says what the job is doing now.
    pub fn say(&self, message: &str) {
        self.update(|job| job.message = Some(message.to_owned()));
    }

    /// A progress that nobody reads (work started outside a job).
    pub fn detached() -> Progress {
        Progress { view: Arc::new(Mutex::new(new_view("detached", JobKind::Provision, ""))) }
    }
}

fn new_view(id: &str, kind: JobKind, target: &str) -> JobView {
    JobView {
        id: id.to_owned(),
        kind,
        target: target.to_owned(),
        state: JobState::Running,
        done: 0,
        total: None,
        message: None,
        started_at: format_ms(now_ms()),
        finished_at: None,
    }
}

impl Jobs {
    /// Runs `work` in the background as a job; returns the job as it starts.
    /// A failure's message (its `Display`) becomes the job's message.
    pub fn spawn<F, E>(
        self: &Arc<Self>,
        kind: JobKind,
        target: &str,
        work: impl FnOnce(Progress) -> F,
    ) -> JobView
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let id = format!("{}-{:x}", kind.as_str(), fastrand_id());
        let view = Arc::new(Mutex::new(new_view(&id, kind, target)));
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.push_back(Arc::clone(&view));
            while jobs.len() > HISTORY {
                jobs.pop_front();
            }
        }
        let progress = Progress { view: Arc::clone(&view) };
        let future = work(progress.clone());
        let snapshot = progress.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        tokio::spawn(async move {
            let outcome = future.await;
            progress.update(|job| {
                job.finished_at = Some(format_ms(now_ms()));
                match outcome {
                    Ok(()) => job.state = JobState::Succeeded,
                    Err(error) => {
                        let message = error.to_string();
                        tracing::warn!(job = %job.id, %message, "job failed");
                        job.state = JobState::Failed;
                        job.message = Some(message);
                    }
                }
            });
        });
        snapshot
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<JobView> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().map(|j| j.lock().unwrap_or_else(|p| p.into_inner()).clone()).find(|j| j.id == id)
    }

    /// Every remembered job, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().map(|j| j.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }
}

/// A short random id (not a secret).
fn fastrand_id() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_report_progress_and_their_end() {
        let jobs = Arc::new(Jobs::default());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let started = jobs.spawn(JobKind::Provision, "thing", |progress| async move {
            progress.set(5, Some(10));
            let _ = wait.await;
            Err("the disk is full".to_owned())
        });
        assert_eq!(started.state, JobState::Running);
        tokio::task::yield_now().await;
        let _ = go.send(());
        let id = started.id.clone();
        let done = loop {
            let job = jobs.get(&id).expect("job");
            if job.state != JobState::Running {
                break job;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(
            (done.state, done.done, done.message.as_deref()),
            (JobState::Failed, 5, Some("the disk is full"))
        );
        assert_eq!(jobs.list().len(), 1);
    }
}
