//! rescue: the async roles (gateway, applet, console) of the remote-support session stack.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
