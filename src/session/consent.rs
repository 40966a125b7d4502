//! The end user's consent: a trait the embedding application implements on the applet
//! side, asked only for what the group policy allows, always under a timeout.
//!
//! The session never calls [`Consent::ask`] for a permission the policy forbids (that is
//! refused before any prompt), and a prompt that does not answer within
//! [`ConsentConfig::timeout`] counts as a refusal. Nothing here grants anything by
//! itself: the answer feeds the session core's decision, which also checks the policy.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rescue_proto::{Permission, PermissionSet};

/// How long the end user has to answer a prompt before it counts as "no" (the session
/// core's default, so the prompt and the core's deadline agree).
pub use rescue_proto::session::permission::DEFAULT_CONSENT_TIMEOUT;

/// A boxed future returned by [`Consent::ask`].
pub type ConsentFuture<'a> = Pin<Box<dyn Future<Output = ConsentAnswer> + Send + 'a>>;

/// What the end user is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsentRequest {
    /// The permissions asked for: one, or every allowed one for the all-in-one prompt.
    pub permissions: PermissionSet,
    /// Whether this is the single prompt for all rights.
    pub all_in_one: bool,
    /// The technician asking (from the verified console certificate, if known).
    pub technician: String,
    /// The technician's account (from the verified console certificate, if known).
    pub account: String,
}

impl ConsentRequest {
    /// A request for one permission.
    pub fn single(permission: Permission, technician: &str, account: &str) -> Self {
        Self {
            permissions: PermissionSet::EMPTY.with(permission),
            all_in_one: false,
            technician: technician.to_owned(),
            account: account.to_owned(),
        }
    }

    /// A request for every permission in `set` at once (the all-in-one prompt).
    pub fn all_in_one(set: PermissionSet, technician: &str, account: &str) -> Self {
        Self {
            permissions: set,
            all_in_one: true,
            technician: technician.to_owned(),
            account: account.to_owned(),
        }
    }
}

/// The end user's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsentAnswer {
    /// Yes.
    Allow,
    /// No (also what a timeout or a dropped prompt means).
    Deny,
}

/// Asks the end user. Implemented by the embedding application on the applet side.
///
/// Implementations should return promptly once the user answers; the session applies
/// the timeout itself and treats a late answer as a refusal.
pub trait Consent: Send + Sync + 'static {
    /// Shows `req` to the end user and resolves to the answer.
    fn ask(&self, req: ConsentRequest) -> ConsentFuture<'_>;
}

/// Consent settings of a session.
#[derive(Clone)]
pub struct ConsentConfig {
    /// Who answers.
    pub consent: Arc<dyn Consent>,
    /// How long a prompt may stay open; then it is a refusal.
    pub timeout: Duration,
}

impl ConsentConfig {
    /// `consent` with [`DEFAULT_CONSENT_TIMEOUT`].
    pub fn new(consent: Arc<dyn Consent>) -> Self {
        Self {
            consent,
            timeout: DEFAULT_CONSENT_TIMEOUT,
        }
    }

    /// Sets the prompt timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Asks under the timeout; a timeout is [`ConsentAnswer::Deny`].
    pub async fn ask(&self, req: ConsentRequest) -> ConsentAnswer {
        tokio::time::timeout(self.timeout, self.consent.ask(req))
            .await
            .unwrap_or(ConsentAnswer::Deny)
    }
}

impl fmt::Debug for ConsentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentConfig")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A consent that refuses everything without asking anyone (the safe default).
#[derive(Clone, Copy, Debug, Default)]
pub struct DenyAll;

impl Consent for DenyAll {
    fn ask(&self, _req: ConsentRequest) -> ConsentFuture<'_> {
        Box::pin(async { ConsentAnswer::Deny })
    }
}

/// A consent from an async closure: `ConsentFn(|req| async move { ... })`.
pub struct ConsentFn<F>(pub F);

impl<F, Fut> Consent for ConsentFn<F>
where
    F: Fn(ConsentRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsentAnswer> + Send + 'static,
{
    fn ask(&self, req: ConsentRequest) -> ConsentFuture<'_> {
        Box::pin((self.0)(req))
    }
}

impl<F> fmt::Debug for ConsentFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsentFn(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl Consent for Never {
        fn ask(&self, _req: ConsentRequest) -> ConsentFuture<'_> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_that_never_answers_is_a_refusal() {
        let cfg = ConsentConfig::new(Arc::new(Never)).with_timeout(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        let req = ConsentRequest::single(Permission::Reboot, "t", "a");
        assert_eq!(cfg.ask(req).await, ConsentAnswer::Deny);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn closure_consent_sees_the_request() {
        let cfg = ConsentConfig::new(Arc::new(ConsentFn(|r: ConsentRequest| async move {
            if r.permissions.contains(Permission::FileTransfer) {
                ConsentAnswer::Allow
            } else {
                ConsentAnswer::Deny
            }
        })));
        let yes = ConsentRequest::single(Permission::FileTransfer, "t", "a");
        let no = ConsentRequest::single(Permission::Reboot, "t", "a");
        assert_eq!(cfg.ask(yes).await, ConsentAnswer::Allow);
        assert_eq!(cfg.ask(no).await, ConsentAnswer::Deny);
        assert_eq!(
            DenyAll
                .ask(ConsentRequest::single(Permission::Reboot, "t", "a"))
                .await,
            ConsentAnswer::Deny
        );
    }
}
