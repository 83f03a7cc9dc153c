//! Handing a rotated vault key to the agent (`passwd`, `recipients remove`), so that
//! `get` through the agent never answers "locked" because of a rotation
//! (`docs/AGENT.md`, "Timeouts and keys").
//!
//! The order is what matters. Under the vault lock, once the new vault is written but
//! before it is renamed into place, the agent is given the new key for the time the
//! old key had left: from the rename on, every reader finds a vault whose key the agent
//! holds. After the rename the old key is not dropped at once: it is given again with
//! a deadline of at most [`OLD_KEY_GRACE`] (`add_key` replaces a key's deadline), so a
//! `get` that read the old file just before the rename can still have its entry
//! decrypted. Only existing requests are used (`status`, `add_key`, `lock`): the agent
//! protocol does not change.
//!
//! Best effort, as before: an agent that fails to answer costs an `unlock`, never the
//! rotation.
use std::time::Duration;

use crate::agent::client::Agent;
use crate::vault::crypto::VaultKey;

/// How long the agent keeps the old key after the rename, at most.
pub const OLD_KEY_GRACE: Duration = Duration::from_secs(10);

/// One rotation's hand-over, from before the rename to after it.
pub struct Handover {
    agent: Agent,
    old_public: String,
    /// What the old key had left when the new one was handed over; `None` while the
    /// agent was not found holding the old key (then it is given nothing).
    old_left: Option<Duration>,
    /// The public key handed over, to take back if the rotation fails.
    new_public: Option<String>,
    /// The old key's label in the agent, kept for the new one.
    label: String,
}

impl Handover {
    /// A hand-over for the vault whose key before the rotation is `old_public`.
    pub fn new(old_public: &str) -> Self {
        Handover {
            agent: Agent::for_user(),
            old_public: old_public.to_owned(),
            old_left: None,
            new_public: None,
            label: String::new(),
        }
    }

    /// Before the rename (under the lock): if the agent holds the old key, give it
    /// `new_key` with the same deadline. Safe to call twice.
    pub fn give_new_key(&mut self, new_key: &VaultKey) {
        if let Ok(Some(held)) = self.agent.status(&self.old_public) {
            // Same absolute deadline and idle timeout (a rotation counts as a use).
            let left = Duration::from_secs(held.vault.timeout_left_secs.max(1));
            let idle = Duration::from_secs(held.vault.idle_secs.max(1));
            self.label = held.vault.label.clone();
            if self.agent.add_key(new_key, &self.label, idle, left).is_ok() {
                self.old_left = Some(left);
                self.new_public = Some(new_key.public().to_string());
            }
        }
    }

    /// After the rename: the old key expires within [`OLD_KEY_GRACE`] (sooner if it
    /// had less time left) instead of at once.
    pub fn retire_old_key(self, old_key: &VaultKey) {
        let Some(left) = self.old_left else { return };
        if self
            .agent
            .add_key(
                old_key,
                &self.label,
                left.min(OLD_KEY_GRACE),
                left.min(OLD_KEY_GRACE),
            )
            .is_err()
        {
            // Could not shorten it: forget it now rather than keep it for hours.
            let _ = self.agent.lock(Some(&self.old_public));
        }
    }

    /// The rotation failed after the new key was handed over: the old vault stays,
    /// so take the new key back (the old one was never touched).
    pub fn undo(self) {
        if let Some(new_public) = self.new_public {
            let _ = self.agent.lock(Some(&new_public));
        }
    }
}
