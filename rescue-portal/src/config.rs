//! Portal configuration: every limit and lifetime, with the defaults the issue asks for.

use std::net::IpAddr;
use std::time::Duration;

use rescue_crypto::password::Cost;

use crate::clock::DAY;

/// Failed logins in a row that lock an account's password path (MISSION: five).
pub const LOCKOUT_FAILURES: i64 = 5;
/// How long a locked account stays locked: long enough to stop guessing, short enough
/// that a lockout by a stranger is not a lasting denial of service.
pub const LOCKOUT_SECS: u64 = 15 * 60;
/// Concurrent scrypt hashes: one costs ~130 MiB at N=2^17, so two on a 2-vCPU host cap
/// hashing memory at ~260 MiB whatever the login rate.
pub const HASH_PERMITS: usize = 2;
/// Longest wait for a hashing permit before a login is refused as busy.
pub const HASH_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body, in bytes: forms and API calls are small; a CSR is < 1 KiB and a
/// batch of session events is capped by [`MAX_EVENTS_PER_POST`].
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Session events accepted in one POST.
pub const MAX_EVENTS_PER_POST: usize = 256;
/// Longest free-text field (names, e-mail, chat text, file names), in bytes.
pub const MAX_FIELD_LEN: usize = 1024;
/// Requests served at once: beyond this, callers wait (bounded by the request timeout).
pub const MAX_CONCURRENT_REQUESTS: usize = 256;
/// Longest time one request may take before the portal answers 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Entries in one IP allow-list.
pub const MAX_ALLOW_LIST_ENTRIES: usize = 64;

/// Everything the portal is configured with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// scrypt cost of new password hashes ([`Cost::DEFAULT`]: N=2^17, r=8, p=1). Tests
    /// lower it; production keeps the default.
    pub password_cost: Cost,
    /// Login attempts one source address may make per [`Config::login_window_secs`].
    pub login_attempts_per_source: u32,
    /// The window of the per-source login rate limit, in seconds.
    pub login_window_secs: u64,
    /// A web or API session ends after this much inactivity (seconds).
    pub idle_timeout_secs: u64,
    /// A web or API session ends this long after login whatever the activity: the
    /// re-authentication schedule (seconds).
    pub reauth_secs: u64,
    /// Lifetime of a console certificate signed from a CSR (hours, not months).
    pub console_cert_validity: Duration,
    /// Whether cookies carry `Secure` (off only for plain-HTTP tests).
    pub secure_cookies: bool,
    /// Whether webhook URLs may point at loopback or private addresses (tests only).
    pub allow_private_webhooks: bool,
    /// Webhook deliveries tried before a delivery is dead-lettered.
    pub webhook_max_attempts: u32,
    /// First retry delay of a webhook delivery (doubles each attempt), seconds.
    pub webhook_first_retry_secs: u64,
    /// Proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Retention figures.
    pub retention: Retention,
    /// The portal's own base URL, for download links (e.g. `http://127.0.0.1:8080`).
    pub base_url: String,
}

/// How long data lives (seconds), with MISSION's figures as defaults.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Retention {
    /// An account's content is deleted at most this long after its deletion request.
    pub after_deletion_request: u64,
    /// An account's content is deleted this long after its subscription ends.
    pub after_subscription_end: u64,
    /// Session logs stay online this long, then move to the archive.
    pub logs_online: u64,
    /// Archived session logs are kept this long after leaving the online store.
    pub logs_archive: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            after_deletion_request: 30 * DAY,
            after_subscription_end: 140 * DAY,
            logs_online: 2 * 365 * DAY,
            logs_archive: 2 * 365 * DAY,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            password_cost: Cost::DEFAULT,
            login_attempts_per_source: 10,
            login_window_secs: 60,
            idle_timeout_secs: 15 * 60,
            reauth_secs: 12 * 3600,
            console_cert_validity: Duration::from_secs(8 * 3600),
            secure_cookies: true,
            allow_private_webhooks: false,
            webhook_max_attempts: 8,
            webhook_first_retry_secs: 30,
            trusted_proxies: Vec::new(),
            retention: Retention::default(),
            base_url: "http://127.0.0.1:8080".into(),
        }
    }
}
