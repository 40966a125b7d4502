//! The rescue portal: the web service beside the gateways that authenticates
//! technicians, holds each account's policies, issues sessions, keeps their logs, posts
//! them to the customer's CRM and deletes them on schedule.
//!
//! - **Store**: sqlx over SQLite (the embedded default, one file created on first start)
//!   or PostgreSQL, same queries ([`db::Db`]); tenant data only through
//!   [`tenant::Tenant`], whose every query binds the account.
//! - **Accounts**: scrypt (N=2^17, r=8, p=1 by default) under a concurrency limit, TOTP
//!   codes used once, lockout after five failures, a per-source rate limit before any
//!   hashing, group IP allow-lists, server-side sessions with idle and absolute expiry
//!   ([`auth`]).
//! - **Issuing**: [`rescue::Portal`] mints GUID, ticket and secret; end users fetch
//!   theirs with a code; the account's shared queue; console certificates from CSRs
//!   ([`issuing`]).
//! - **Logs, webhooks, retention, sealing, audit**: [`logs`], [`webhook`] (Standard
//!   Webhooks), [`retention`], [`keys`] (a data key per account, crypto-shredded on
//!   deletion), [`audit`] (hash-chained admin trail).
//!
//! Time comes from a [`clock::Clock`]; nothing here reads the system clock directly, so
//! tests drive lockout, expiry, retries and retention. Start from [`Service::new`] and
//! [`http::router`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod allowlist;
pub mod audit;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod issuing;
pub mod keys;
pub mod logs;
pub mod ratelimit;
pub mod retention;
pub mod service;
pub mod tenant;
pub mod webhook;

pub use config::Config;
pub use db::Db;
pub use error::PortalError;
pub use keys::MasterKey;
pub use service::Service;
