//! The activity log: what happened to an account and its servers, who did it, from where and
//! when, for the owner and admins to read. Recording never fails the request it describes: a
//! store error is logged.

use std::net::IpAddr;

use crate::ControlPlane;
use crate::access::CurrentUser;
use crate::db::{NewActivity, Server};

/// One thing that happened, about to be recorded.
#[derive(Debug)]
pub struct Event(NewActivity);

impl Event {
    /// `action` by the signed-in user.
    pub fn by(user: &CurrentUser, action: &'static str) -> Event {
        Event::of_account(user.0.id, user.2, action)
    }

    /// `action` concerning account `user_id`, from `address` (sign-ins, resets).
    pub fn of_account(user_id: i64, address: IpAddr, action: &'static str) -> Event {
        Event(NewActivity {
            user_id,
            actor_id: None,
            server_id: None,
            action,
            address: address.to_string(),
            detail: String::new(),
        })
    }

    /// On `server`: it concerns the server's owner, and names the actor when that is someone
    /// else (an admin).
    pub fn on(mut self, server: &Server) -> Event {
        if server.owner_id != self.0.user_id {
            self.0.actor_id = Some(self.0.user_id);
            self.0.user_id = server.owner_id;
        }
        self.0.server_id = Some(server.id);
        self
    }

    /// Concerning another account (an admin's action on it).
    pub fn on_account(mut self, user_id: i64) -> Event {
        if user_id != self.0.user_id {
            self.0.actor_id = Some(self.0.user_id);
            self.0.user_id = user_id;
        }
        self
    }

    /// A few words more; never a secret.
    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.0.detail = detail.into();
        self
    }

    /// Writes it down.
    pub async fn record(self, control: &ControlPlane) {
        let action = self.0.action;
        if let Err(e) = control.store.record_activity(self.0, zlh_proto::time::now_ms()).await {
            tracing::error!(action, error = %e, "cannot record activity");
        }
    }
}
