//! Wire formats and sans-IO state machines of the rescue stack.
//!
//! This crate never performs I/O and never reads a clock: every function that needs the
//! time takes it as an argument, and every parser works on byte slices. It is the bottom
//! floor of the workspace and imports nothing of the other rescue crates.
//!
//! Start from [`guid::Guid`] and [`permission::Policy`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod codec;
pub mod guid;
pub mod handoff;
pub mod party;
pub mod paths;
pub mod permission;
pub mod session;
pub mod text;
#[doc(hidden)]
pub mod vectors;
pub mod wire;

pub use guid::Guid;
pub use party::{AccountId, Role};
pub use permission::{Permission, PermissionSet, Policy};
