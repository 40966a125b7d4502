//! A minimal HTTP/1.1 server side for the session manager.
