//! The shared session directory of a gateway cluster, on Redis (issue 9, point 2).
//!
//! Each gateway keeps its own sessions' in-process state in a [`MemoryDirectory`] (hop
//! ids, resume secrets, the reattach grace: what only the gateway holding the hops can
//! act on), and writes the facts the cluster shares to Redis:
//!
//! | key | type | content | expiry |
//! | --- | --- | --- | --- |
//! | `rescue:{<acct>}:epoch` | string | Redis time (ms) when the store first saw the account | none |
//! | `rescue:{<acct>}:used:<guid>` | string | the registering gateway (the GUID may not register again) | the ticket's expiry |
//! | `rescue:{<acct>}:s:<guid>` | hash | `st` (`w` waiting, `p` paired), `owner`, `reg` (ms) | pending lifetime; when paired, the relay's lifetime cap |
//! | `rescue:{<acct>}:q` | zset | waiting GUID → registered (ms) | entries removed at claim and close, stale ones when read |
//!
//! The `{<acct>}` hash tag keeps one account's keys in one Redis Cluster slot, so each
//! script touches one slot (an account id is decimal digits, never a brace). GUIDs are
//! lower-case hex. REGISTER, QUEUE and CLAIM are Lua scripts (atomic; time is
//! `redis.call('TIME')`, so the gateways' clocks do not matter); a second REGISTER of
//! a GUID anywhere in the cluster is `GUID_TAKEN`, a second CLAIM `ALREADY_CLAIMED`.
//!
//! Every call has a deadline ([`STORE_CALL_TIMEOUT`] by default): a store that is down
//! or stalled fails a set-up with [`DirectoryError::Timeout`] or
//! [`DirectoryError::Unavailable`], which name the store; relays never touch it. The
//! connection manager reconnects by itself, so set-ups succeed again once Redis is back.
//!
//! A Redis restarted empty has forgotten which GUIDs were used (PROTOCOL.md 4.3, shared
//! directory): the REGISTER script finds the account's epoch key missing, sets it to
//! now, and from then on refuses every ticket that expires before `epoch +
//! max_ticket_lifetime` (to the second, as tickets carry whole seconds;
//! [`DirectoryError::StoreRestarted`]): a ticket issued before the restart may have
//! registered before it, a ticket issued after it cannot have. This holds as long as
//! the portal issues no ticket longer than `max_ticket_lifetime`.
//! The gateways write the epoch keys of the accounts they serve when they start.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use rescue_proto::handoff::gateway::{
    Limits, Outgoing, Pairing, ReattachRequest, Reattached, RegisterRequest,
};
use rescue_proto::handoff::{ConsoleIdentity, HopId, TableError};
use rescue_proto::wire::limits::MAX_QUEUE_ENTRIES;
use rescue_proto::wire::signal::{
    AccountId, CloseReason, QueueEntry, QueueList, Registered, ResumeSecret,
};
use rescue_proto::Guid;

use super::{DirFuture, Directory, DirectoryError, MemoryDirectory, RememberedGuid};

/// Default deadline of one store call: Redis answers a script on loopback or in a data
/// centre in well under a millisecond; half a second is far beyond any healthy answer
/// and short enough that a set-up fails fast while the store is away.
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Default hold-off after an empty restart of the store: tickets expiring within this
/// of the new epoch are refused. Must be at least the longest ticket lifetime the
/// portal issues (its default, [`crate::portal::TICKET_LIFETIME`]).
pub const MAX_TICKET_LIFETIME: Duration = crate::portal::TICKET_LIFETIME;

/// How a gateway reaches its share of the store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port/db` (no TLS feature is built in).
    pub url: String,
    /// This gateway's name in the cluster (the `owner` of its sessions), unique.
    pub gateway: String,
    /// The accounts whose epoch keys this gateway writes at start.
    pub accounts: Vec<AccountId>,
    /// Deadline of one store call.
    pub call_timeout: Duration,
    /// See [`MAX_TICKET_LIFETIME`].
    pub max_ticket_lifetime: Duration,
    /// Lifetime of a paired session's key (the relay's lifetime cap).
    pub paired_lifetime: Duration,
}

impl RedisConfig {
    /// A configuration with the default deadlines.
    pub fn new(url: impl Into<String>, gateway: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            gateway: gateway.into(),
            accounts: Vec::new(),
            call_timeout: STORE_CALL_TIMEOUT,
            max_ticket_lifetime: MAX_TICKET_LIFETIME,
            paired_lifetime: crate::relay::MAX_LIFETIME,
        }
    }
}

/// A [`Directory`] whose cluster-wide facts live in Redis (see the module docs).
pub struct RedisDirectory {
    local: MemoryDirectory,
    limits: Limits,
    redis: ConnectionManager,
    config: RedisConfig,
    /// The session (and its account) of each hop this gateway holds.
    hops: Mutex<HashMap<HopId, (Guid, AccountId)>>,
}

impl std::fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDirectory")
            .field("url", &self.config.url)
            .field("gateway", &self.config.gateway)
            .finish_non_exhaustive()
    }
}

const REGISTER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = redis.call('GET', KEYS[1])
if not e then redis.call('SET', KEYS[1], now); e = now end
if tonumber(ARGV[3]) < math.floor(tonumber(e) / 1000) * 1000 + tonumber(ARGV[6]) then
  return redis.error_reply('STORE_RESTARTED')
end
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('GUID_TAKEN') end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - tonumber(ARGV[4])))
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  return redis.error_reply('ACCOUNT_FULL')
end
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
redis.call('HSET', KEYS[3], 'st', 'w', 'owner', ARGV[2], 'reg', now)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return 1
"#;

const QUEUE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  if redis.call('EXISTS', ARGV[1] .. ids[i]) == 1 then
    table.insert(out, ids[i])
    table.insert(out, tostring(now - tonumber(ids[i + 1])))
  else
    redis.call('ZREM', KEYS[1], ids[i])
  end
end
return out
"#;

const CLAIM: &str = r#"
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return redis.error_reply('UNKNOWN_GUID') end
if st ~= 'w' then return redis.error_reply('ALREADY_CLAIMED') end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner ~= ARGV[2] then return {'elsewhere', owner} end
redis.call('HSET', KEYS[1], 'st', 'p')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', owner}
"#;

/// The refusals the scripts answer with.
const SCRIPT_ERRORS: [&str; 5] = [
    "GUID_TAKEN",
    "ACCOUNT_FULL",
    "UNKNOWN_GUID",
    "ALREADY_CLAIMED",
    "STORE_RESTARTED",
];

fn acct_key(account: &AccountId, what: &str) -> String {
    format!("rescue:{{{account}}}:{what}")
}

fn guid_hex(guid: &Guid) -> String {
    hex::encode(guid.as_bytes())
}

fn parse_guid(text: &[u8]) -> Option<Guid> {
    let bytes = hex::decode(text).ok()?;
    Guid::from_slice(&bytes).ok()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisDirectory {
    /// Connects to the store (within the call deadline) and writes the epoch keys of
    /// `config.accounts`; `limits` are the local table's (and the per-account cap).
    pub async fn connect(config: RedisConfig, limits: Limits) -> Result<Self, DirectoryError> {
        let store = config.url.clone();
        let unavailable = |e: redis::RedisError| DirectoryError::Unavailable {
            store: store.clone(),
            reason: e.to_string(),
        };
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.call_timeout))
            .set_response_timeout(Some(config.call_timeout))
            .set_number_of_retries(2);
        let connect = client.get_connection_manager_with_config(manager);
        let redis = tokio::time::timeout(config.call_timeout, connect)
            .await
            .map_err(|_| DirectoryError::Timeout {
                store: store.clone(),
                after: config.call_timeout,
            })?
            .map_err(unavailable)?;
        let dir = Self {
            local: MemoryDirectory::new(limits),
            limits,
            redis,
            config,
            hops: Mutex::default(),
        };
        for account in dir.config.accounts.clone() {
            let key = acct_key(&account, "epoch");
            let mut con = dir.redis.clone();
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(unix_millis()).arg("NX");
            dir.call(set.query_async::<Value>(&mut con)).await?;
        }
        Ok(dir)
    }

    /// The in-process part (this gateway's hops).
    pub fn local(&self) -> &MemoryDirectory {
        &self.local
    }

    fn hops(&self) -> MutexGuard<'_, HashMap<HopId, (Guid, AccountId)>> {
        self.hops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one store call under the deadline.
    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, DirectoryError> {
        match tokio::time::timeout(self.config.call_timeout, fut).await {
            Err(_) => Err(DirectoryError::Timeout {
                store: self.config.url.clone(),
                after: self.config.call_timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.script_error(e)),
        }
    }

    /// A script's typed refusal, or the store's failure.
    fn script_error(&self, e: redis::RedisError) -> DirectoryError {
        // A script's `error_reply` arrives as a response error whose text is the code.
        let text = e.to_string();
        let code = [e.code(), e.detail()]
            .into_iter()
            .flatten()
            .chain(text.rsplit(' ').next())
            .find(|c| SCRIPT_ERRORS.contains(c))
            .unwrap_or_default();
        match code {
            "GUID_TAKEN" => TableError::GuidTaken.into(),
            "ACCOUNT_FULL" => TableError::AccountSessionQuota.into(),
            "UNKNOWN_GUID" => TableError::UnknownGuid.into(),
            "ALREADY_CLAIMED" => TableError::AlreadyClaimed.into(),
            "STORE_RESTARTED" => DirectoryError::StoreRestarted {
                store: self.config.url.clone(),
            },
            _ => DirectoryError::Unavailable {
                store: self.config.url.clone(),
                reason: e.to_string(),
            },
        }
    }

    fn malformed(&self, what: &str) -> DirectoryError {
        DirectoryError::Unavailable {
            store: self.config.url.clone(),
            reason: format!("malformed answer to {what}"),
        }
    }

    async fn register_inner(
        &self,
        now: Instant,
        req: RegisterRequest,
        record: &RememberedGuid,
    ) -> Result<Registered, DirectoryError> {
        let (guid, account, hop) = (req.guid, req.account, req.hop);
        self.local.check_register(now, &req)?;
        let hex = guid_hex(&guid);
        let mut con = self.redis.clone();
        let script = Script::new(REGISTER);
        let mut inv = script.key(acct_key(&account, "epoch"));
        inv.key(acct_key(&account, &format!("used:{hex}")))
            .key(acct_key(&account, &format!("s:{hex}")))
            .key(acct_key(&account, "q"))
            .arg(&hex)
            .arg(&self.config.gateway)
            .arg(record.expires_unix.saturating_mul(1000))
            .arg(millis(self.limits.pending_lifetime))
            .arg(self.limits.max_per_account)
            .arg(millis(self.config.max_ticket_lifetime));
        let _: Value = self.call(inv.invoke_async(&mut con)).await?;
        match self.local.register_now(now, req, record) {
            Ok(r) => {
                self.hops().insert(hop, (guid, account));
                Ok(r)
            }
            Err(e) => {
                // The GUID stays used (fail closed); the waiting entry goes.
                self.forget(guid, account).await;
                Err(e)
            }
        }
    }

    async fn queue_inner(&self, account: &AccountId) -> Result<QueueList, DirectoryError> {
        let mut con = self.redis.clone();
        let script = Script::new(QUEUE);
        let mut inv = script.key(acct_key(account, "q"));
        inv.arg(acct_key(account, "s:"))
            .arg(MAX_QUEUE_ENTRIES)
            .arg(millis(self.limits.pending_lifetime));
        let flat: Vec<Vec<u8>> = self.call(inv.invoke_async(&mut con)).await?;
        if !flat.len().is_multiple_of(2) || flat.len() > 2 * MAX_QUEUE_ENTRIES {
            return Err(self.malformed("QUEUE"));
        }
        let mut entries = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let guid = parse_guid(&pair[0]).ok_or_else(|| self.malformed("QUEUE"))?;
            let ms: u64 = std::str::from_utf8(&pair[1])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.malformed("QUEUE"))?;
            let waiting_secs = u32::try_from(ms / 1000).unwrap_or(u32::MAX);
            entries.push(QueueEntry { guid, waiting_secs });
        }
        QueueList::new(entries).map_err(|_| self.malformed("QUEUE"))
    }

    async fn claim_inner(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> Result<Pairing, DirectoryError> {
        let account = identity.account;
        let hex = guid_hex(&guid);
        let mut con = self.redis.clone();
        let script = Script::new(CLAIM);
        let mut inv = script.key(acct_key(&account, &format!("s:{hex}")));
        inv.key(acct_key(&account, "q"))
            .arg(&hex)
            .arg(&self.config.gateway)
            .arg(millis(self.config.paired_lifetime));
        let answer: Vec<String> = self.call(inv.invoke_async(&mut con)).await?;
        match answer.as_slice() {
            [ok, _] if ok == "ok" => {}
            [elsewhere, owner] if elsewhere == "elsewhere" => {
                return Err(DirectoryError::Elsewhere {
                    owner: owner.clone(),
                })
            }
            _ => return Err(self.malformed("CLAIM")),
        }
        match self
            .local
            .claim_now(now, guid, identity, hop, resume_secret)
        {
            Ok(p) => {
                self.hops().insert(hop, (guid, account));
                Ok(p)
            }
            Err(e) => {
                self.forget(guid, account).await;
                Err(e.into())
            }
        }
    }

    /// Removes a session's shared entries (best effort: they expire anyway).
    async fn forget(&self, guid: Guid, account: AccountId) {
        let hex = guid_hex(&guid);
        let mut con = self.redis.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(acct_key(&account, &format!("s:{hex}")))
            .zrem(acct_key(&account, "q"), &hex);
        if let Err(e) = self.call(pipe.query_async::<Value>(&mut con)).await {
            tracing::debug!(error = %e, "session entry left to expire in the store");
        }
    }

    /// After a local change: forgets, in the store, the sessions of this gateway that
    /// ended, and their hops here.
    async fn sync_ended(&self) {
        let ended: Vec<(Guid, AccountId)> = {
            let mut hops = self.hops();
            let mut gone = Vec::new();
            hops.retain(|_, (guid, account)| {
                let live = self.local.is_live(guid);
                if !live {
                    gone.push((*guid, *account));
                }
                live
            });
            gone.sort_unstable_by_key(|(g, _)| *g);
            gone.dedup_by_key(|(g, _)| *g);
            gone
        };
        for (guid, account) in ended {
            self.forget(guid, account).await;
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

impl Directory for RedisDirectory {
    fn register<'a>(
        &'a self,
        now: Instant,
        req: RegisterRequest,
        record: &'a RememberedGuid,
    ) -> DirFuture<'a, Registered> {
        Box::pin(self.register_inner(now, req, record))
    }

    fn queue<'a>(&'a self, _now: Instant, account: &'a AccountId) -> DirFuture<'a, QueueList> {
        Box::pin(self.queue_inner(account))
    }

    fn claim(
        &self,
        now: Instant,
        guid: Guid,
        identity: ConsoleIdentity,
        hop: HopId,
        resume_secret: ResumeSecret,
    ) -> DirFuture<'_, Pairing> {
        Box::pin(self.claim_inner(now, guid, identity, hop, resume_secret))
    }

    fn close(&self, now: Instant, hop: HopId, reason: CloseReason) -> DirFuture<'_, Vec<Outgoing>> {
        Box::pin(async move {
            let out = self.local.close_now(now, hop, reason);
            self.sync_ended().await;
            Ok(out)
        })
    }

    fn hop_lost(&self, now: Instant, hop: HopId) -> DirFuture<'_, Vec<Outgoing>> {
        Box::pin(async move {
            let out = self.local.hop_lost_now(now, hop);
            self.sync_ended().await;
            Ok(out)
        })
    }

    fn reattach(&self, now: Instant, req: ReattachRequest) -> DirFuture<'_, Reattached> {
        Box::pin(async move {
            let (guid, hop) = (req.guid, req.hop);
            let re = self.local.reattach_now(now, req)?;
            let account = self.local.account_of(&guid);
            if let Some(account) = account {
                self.hops().insert(hop, (guid, account));
            }
            Ok(re)
        })
    }

    fn expire(&self, now: Instant) -> DirFuture<'_, Vec<Outgoing>> {
        Box::pin(async move {
            let out = self.local.expire_now(now);
            self.sync_ended().await;
            Ok(out)
        })
    }

    fn maintain(&self, _now_unix: u64) -> DirFuture<'_, ()> {
        // The store keeps the used GUIDs (with their TTLs); nothing to sync here.
        Box::pin(std::future::ready(Ok(())))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.local.poll_timeout()
    }

    fn len(&self) -> usize {
        self.local.len()
    }
}
