//! REATTACH through the gateway (PROTOCOL.md 3.12): a party that lost its hop comes
//! back on a new one with its resume secret.
//!
//! A REATTACH is checked by the directory only (`SessionTable::reattach` of
//! rescue-proto: GUID, current resume secret compared in constant time, for a console
//! the same certificate identity, within the grace). The returning hop gets RESUMED and
//! is brought to its partner through the gateway's session table; the relay then runs
//! again ([`super::session`]).
//!
//! A REATTACH that displaces a hop still inside a running relay (the gateway has not
//! yet seen the old hop fail) tells that relay, which drops the old hop and hands back
//! the other as the survivor.

use std::time::Instant;

use rescue_crypto::pki::ConsoleName;
use rescue_proto::handoff::gateway::ReattachRequest;
use rescue_proto::handoff::{ConsoleIdentity, HopId};
use rescue_proto::wire::signal::{ErrorCode, Message, Reattach, Role, TechnicianName};

use super::admission::Conn;
use super::refusal::{directory_refusal, refuse, Refusal};
use super::session::{relay_session, wait, wait_parked};
use super::shared::Shared;
use super::table::{Entry, Meet};
use crate::signal::{self, Hop};

/// Checks a REATTACH with the directory, answers RESUMED, meets the partner.
pub(crate) async fn serve(
    shared: &Shared,
    mut hop: Hop,
    hop_id: HopId,
    role: Role,
    console: Option<&ConsoleName>,
    r: Reattach,
    conn: &Conn,
) {
    let identity = match (role, console) {
        (Role::Console, Some(name)) => match identity_of(name) {
            Some(i) => Some(i),
            None => {
                let r = Refusal::new(ErrorCode::WrongAccount, "unusable console certificate");
                return refuse(&shared.stats, hop, r).await;
            }
        },
        _ => None,
    };
    let Some(new_secret) = super::shared::random_secret() else {
        let r = Refusal::new(ErrorCode::Internal, "random generator failed");
        return refuse(&shared.stats, hop, r).await;
    };
    let guid = r.guid;
    let req = ReattachRequest {
        guid,
        role,
        resume_secret: r.resume_secret,
        identity,
        hop: hop_id,
        new_secret,
    };
    let re = match shared.directory.reattach(Instant::now(), req).await {
        Ok(re) => re,
        Err(e) => return refuse(&shared.stats, hop, directory_refusal(&shared.stats, e)).await,
    };
    // The resume secret authenticated the connection.
    if let Err(r) = conn.authenticate() {
        let _ = shared.directory.hop_lost(Instant::now(), hop_id).await;
        return refuse(&shared.stats, hop, r).await;
    }
    tracing::info!(displaced = ?re.displaced, "reattached");
    shared.stats.on_reattached();
    if let Some(old) = re.displaced {
        shared.sessions.displace(guid, old);
    }
    let paired = re.resumed.paired;
    if signal::send(&mut hop, Message::Resumed(re.resumed))
        .await
        .is_err()
    {
        let _ = shared.directory.hop_lost(Instant::now(), hop_id).await;
        return;
    }
    if !paired {
        // A waiting applet's hop ends its session (the applet side has no parking for
        // a returning hop yet): nothing to relay to.
        let r = Refusal::new(ErrorCode::UnknownGuid, "session not paired");
        return refuse(&shared.stats, hop, r).await;
    }
    let entry = Entry {
        role,
        hop_id,
        hop,
        survivor: false,
    };
    match shared.sessions.meet(guid, entry) {
        Meet::Handed => {}
        Meet::Pair(mine, other) => relay_session(shared, guid, (mine, other)).await,
        Meet::Parked(parked) => wait_parked(parked, shared).await,
        Meet::Listen(entry, waiting) => {
            // Only survivors listen; a returning hop never gets here.
            if let Some(pair) = wait(shared, entry, waiting).await {
                relay_session(shared, guid, pair).await;
            }
        }
    }
}

/// The console's identity in the directory's terms.
fn identity_of(name: &ConsoleName) -> Option<ConsoleIdentity> {
    Some(ConsoleIdentity {
        account: name.account,
        technician: TechnicianName::new(name.technician.clone()).ok()?,
    })
}
