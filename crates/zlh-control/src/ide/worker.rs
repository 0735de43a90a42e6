//! The IDE's own thread: hosted IDEs' connections are served on a runtime of one thread with a
//! reactor of its own, as an nginx worker serves its connections. On the control plane's
//! work-stealing runtime their requests took turns with each other across two workers, and
//! the slowest hundredth waited longer than through nginx although the mean was shorter
//! (`cargo xtask bench ide`). The store is not touched here: what needs it runs on the main
//! runtime ([`Worker::main`]), whose reactor its connections belong to.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

#[derive(Debug)]
pub(crate) struct Worker {
    ide: Handle,
    main: Handle,
    /// Dropped with the worker: the thread then ends, cutting what is still open on it.
    _stop: oneshot::Sender<()>,
}

impl Worker {
    /// Starts the thread; called on the main runtime.
    pub(crate) fn start() -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let ide = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("zlh-ide".into()).spawn(move || {
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Worker { ide, main: Handle::current(), _stop: stop })
    }

    /// Runs `work` on the IDE's thread.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.ide.spawn(work);
    }

    /// The main runtime, for what uses the store.
    pub(crate) fn main(&self) -> &Handle {
        &self.main
    }
}
