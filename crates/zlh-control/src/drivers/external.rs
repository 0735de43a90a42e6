//! The `external` driver: agents that someone else runs (on another host, in a container
//! engine without a driver of its own yet), attached by URL and secret. The control plane polls
//! them and proxies to them, but never starts, revives or removes them.

use async_trait::async_trait;

use super::{AgentSpec, Driver, DriverError, Teardown};
use crate::registry::AgentEndpoint;

/// Agents run elsewhere.
#[derive(Debug, Default)]
pub struct ExternalDriver;

#[async_trait]
impl Driver for ExternalDriver {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn create(&self, _server_id: i64, _spec: &AgentSpec) -> Result<AgentEndpoint, DriverError> {
        Err(DriverError("external servers are attached to a running agent, not created".into()))
    }

    async fn revive(&self, _server_id: i64) -> Result<bool, DriverError> {
        Ok(false)
    }

    async fn destroy(&self, _server_id: i64, _teardown: Teardown) -> Result<(), DriverError> {
        Ok(())
    }
}
