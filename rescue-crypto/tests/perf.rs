//! Rough cost figures for the crypto the other layers call on hot or login paths.
//! Ignored by default (timing); run in release:
//! `cargo test --release -p rescue-crypto --test perf -- --ignored --nocapture --test-threads 1`.
//! Each test also asserts a generous bound so a pathological regression fails.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rescue_crypto::pki::{AccountCa, AccountId, CONSOLE_CERT_VALIDITY};
use rescue_crypto::seal::SealKey;
use rescue_crypto::ticket::{self, Ticket, TicketSigner};
use rescue_crypto::tls::{self, AccountRoots};
use rescue_crypto::{new_guid, FileDigest, Pin};
use rustls::{ClientConnection, ConnectionCommon, ServerConnection};

/// Runs `f` repeatedly for about `budget` and returns the mean time per call.
fn per_call(budget: Duration, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn pump<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

#[test]
#[ignore]
fn inner_tls_handshake_cost() {
    let ca = AccountCa::generate(AccountId(1)).unwrap();
    let id = ca.issue_console_cert("t", CONSOLE_CERT_VALIDITY).unwrap();
    let client = tls::inner_client_config_account(ca.pin()).unwrap();
    let server = tls::inner_server_config(&id).unwrap();
    let t = per_call(Duration::from_secs(2), || {
        let mut c = ClientConnection::new(Arc::clone(&client), tls::server_name()).unwrap();
        let mut s = ServerConnection::new(Arc::clone(&server)).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            pump(&mut c, &mut s);
            pump(&mut s, &mut c);
        }
    });
    println!(
        "inner TLS 1.3 handshake, both ends, one core: {t:?} ({:.0}/s)",
        1.0 / t.as_secs_f64()
    );
    assert!(t < Duration::from_millis(20));
}

#[test]
#[ignore]
fn ticket_sign_and_verify_cost() {
    let signer = TicketSigner::generate().unwrap();
    let t = Ticket {
        guid: new_guid(),
        account: AccountId(1),
        gateways: vec!["gw.example:443".into()],
        gateway_ca_pin: Pin([1; 32]),
        account_ca_pin: Pin([2; 32]),
        policy: Default::default(),
        group: "support".into(),
        expires_at_unix: u64::MAX,
    };
    let bytes = signer.sign(&t).unwrap();
    let key = signer.verify_key();
    let sign = per_call(Duration::from_secs(1), || {
        black_box(signer.sign(black_box(&t)).unwrap());
    });
    let verify = per_call(Duration::from_secs(1), || {
        black_box(ticket::verify(black_box(&bytes), &key, 0).unwrap());
    });
    println!(
        "ticket ({} B): sign {sign:?}, verify {verify:?} ({:.0}/s)",
        bytes.len(),
        1.0 / verify.as_secs_f64()
    );
    assert!(verify < Duration::from_millis(2));
}

#[test]
#[ignore]
fn account_of_cost() {
    let ca = AccountCa::generate(AccountId(9)).unwrap();
    let id = ca.issue_console_cert("t", CONSOLE_CERT_VALIDITY).unwrap();
    let mut roots = AccountRoots::new();
    for n in 0..100 {
        let other = AccountCa::generate(AccountId(1000 + n)).unwrap();
        roots.add(other.account(), other.cert().clone());
    }
    roots.add(ca.account(), ca.cert().clone());
    let t = per_call(Duration::from_secs(1), || {
        assert_eq!(roots.account_of(black_box(id.chain())), Some(AccountId(9)));
    });
    println!("account_of with 101 account CAs: {t:?}");
    assert!(t < Duration::from_millis(2));
}

fn throughput(label: &str, bytes: usize, t: Duration) -> f64 {
    let mbs = bytes as f64 / t.as_secs_f64() / 1e6;
    println!("{label}: {mbs:.0} MB/s");
    mbs
}

#[test]
#[ignore]
fn seal_and_digest_throughput() {
    let chunk = vec![0x5a_u8; 64 * 1024];
    let key = SealKey::derive(&[7; 32], b"salt", b"info").unwrap();
    let sealed = key.seal(b"aad", &chunk).unwrap();
    let seal = per_call(Duration::from_secs(1), || {
        black_box(key.seal(b"aad", black_box(&chunk)).unwrap());
    });
    let open = per_call(Duration::from_secs(1), || {
        black_box(key.open(b"aad", black_box(&sealed)).unwrap());
    });
    let mut d = FileDigest::new();
    let digest = per_call(Duration::from_secs(1), || d.update(black_box(&chunk)));
    assert!(throughput("seal, 64 KiB records", chunk.len(), seal) > 50.0);
    assert!(throughput("open, 64 KiB records", chunk.len(), open) > 50.0);
    assert!(throughput("FileDigest (MD5 + SHA-256)", chunk.len(), digest) > 50.0);
}

#[test]
#[ignore]
fn password_hash_cost() {
    let start = Instant::now();
    let h = rescue_crypto::password::hash_password("correct horse battery staple").unwrap();
    let hash = start.elapsed();
    let start = Instant::now();
    assert!(rescue_crypto::password::verify_password("correct horse battery staple", &h).unwrap());
    println!(
        "scrypt N=2^17 r=8 p=1: hash {hash:?}, verify {:?}",
        start.elapsed()
    );
    assert!(
        hash > Duration::from_millis(20),
        "suspiciously cheap: parameters not applied?"
    );
}

#[test]
#[ignore]
fn digest_parts_throughput() {
    use md5::Digest as _;
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut m = md5::Md5::new();
    let md5 = per_call(Duration::from_secs(1), || m.update(black_box(&chunk)));
    let mut s = ring::digest::Context::new(&ring::digest::SHA256);
    let sha = per_call(Duration::from_secs(1), || s.update(black_box(&chunk)));
    assert!(throughput("MD5 alone", chunk.len(), md5) > 50.0);
    assert!(throughput("SHA-256 alone (ring)", chunk.len(), sha) > 50.0);
}
