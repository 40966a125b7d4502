//! Verifies a session audit log written by `rescue::audit::JsonlAuditSink`: every line,
//! the hash chain and the head file. Any edit, removal (also of the last lines) or
//! reordering makes it fail with the first bad line.
//!
//! ```text
//! cargo run --example audit_verify -- audit.jsonl
//! cargo run --example audit_verify -- audit.jsonl --master-hex <64 hex> --log-id applet
//! cargo run --example audit_verify -- --demo /tmp/demo-audit   # writes a sealed sample log
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rescue::audit::{audit_seal_key, verify_audit_file, AuditSink, JsonlAuditSink};
use rescue_proto::audit::{AuditEvent, Party, PathKind};
use rescue_proto::Policy;

/// Verify a rescue audit log.
#[derive(Parser)]
struct Args {
    /// The log file (its head is `<log>.head`).
    log: Option<PathBuf>,
    /// Master secret (hex, at least 32 bytes) of a sealed log.
    #[arg(long)]
    master_hex: Option<String>,
    /// The log id the key was derived for (default: the file stem).
    #[arg(long)]
    log_id: Option<String>,
    /// Print the records.
    #[arg(long)]
    print: bool,
    /// Write a sealed sample log into this directory first (master = 32 × 0x01, log id
    /// "demo"), then verify it.
    #[arg(long)]
    demo: Option<PathBuf>,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(dir) = args.demo.take() {
        match write_demo(&dir) {
            Ok(p) => {
                args.log = Some(p);
                args.master_hex = Some(hex::encode([1u8; 32]));
                args.log_id = Some("demo".into());
            }
            Err(e) => {
                eprintln!("cannot write the demo log: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(log) = args.log else {
        eprintln!("usage: audit_verify <log> [--master-hex HEX] [--log-id ID] [--print]");
        return ExitCode::FAILURE;
    };
    let key = match &args.master_hex {
        None => None,
        Some(h) => {
            let id = args.log_id.clone().unwrap_or_else(|| stem(&log));
            let master = match hex::decode(h) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("bad --master-hex: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match audit_seal_key(&master, &id) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("bad key: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match verify_audit_file(&log, key.as_ref()) {
        Ok(s) => {
            if args.print {
                s.lines.iter().for_each(|l| println!("{l}"));
            }
            println!("OK: {} records, head {}", s.records, s.head);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("TAMPERED or unreadable: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stem(p: &std::path::Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_demo(dir: &std::path::Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("demo.jsonl");
    let _ = std::fs::remove_file(&path);
    let sink = JsonlAuditSink::create_sealed(&path, audit_seal_key(&[1u8; 32], "demo")?)?;
    sink.record(AuditEvent::PathChanged {
        kind: PathKind::Relay,
    })?;
    let chat = AuditEvent::chat(&Policy::default(), Party::Technician, "hello");
    sink.record(chat)?;
    sink.flush()?;
    Ok(path)
}
