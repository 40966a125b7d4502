//! Prometheus metrics of one gateway (the `metrics` feature; issue 9, point 6).
//!
//! Register them in the embedding application's registry with
//! [`GatewayMetrics::register`] (a prefix or label per gateway keeps several in one
//! process apart), hand them to [`super::GatewayConfig::metrics`], and serve
//! `prometheus_client::encoding::text::encode` of the registry on a route of your own
//! (the example gateway's `--metrics ADDR`). Labels are closed sets (a state, an error
//! code, a direction): never a GUID, an account or a technician.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rescue_proto::wire::signal::ErrorCode;

/// A refusal's ERROR code (`none`: closed without one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// A relay direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabel {
    dir: &'static str,
}

/// The metrics of one gateway; cheap to clone (every metric is shared).
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    waiting: Gauge,
    relaying: Gauge,
    setups: Counter,
    refusals: Family<CodeLabel, Counter>,
    relayed_bytes: Family<DirLabel, Counter>,
    reattaches: Counter,
    register_seconds: Histogram,
    store_errors: Counter,
}

impl GatewayMetrics {
    /// Creates the metrics and registers them in `registry` (names start with
    /// `rescue_gateway_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            waiting: Gauge::default(),
            relaying: Gauge::default(),
            setups: Counter::default(),
            refusals: Family::default(),
            relayed_bytes: Family::default(),
            reattaches: Counter::default(),
            // 1 ms to about 8 s.
            register_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            store_errors: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("rescue_gateway");
        r.register(
            "sessions_waiting",
            "Sessions registered and waiting for a technician",
            m.waiting.clone(),
        );
        r.register(
            "sessions_relaying",
            "Sessions whose relay runs",
            m.relaying.clone(),
        );
        r.register(
            "setups",
            "Sessions paired (PAIRED sent to both)",
            m.setups.clone(),
        );
        r.register(
            "refusals",
            "Connections refused, by ERROR code",
            m.refusals.clone(),
        );
        r.register(
            "relayed_bytes",
            "DATA bytes relayed, by direction",
            m.relayed_bytes.clone(),
        );
        r.register("reattaches", "REATTACH accepted", m.reattaches.clone());
        r.register(
            "register_seconds",
            "Time from TCP accept to REGISTERED sent",
            m.register_seconds.clone(),
        );
        r.register(
            "store_errors",
            "Calls to the shared session store that failed or timed out",
            m.store_errors.clone(),
        );
        m
    }

    pub(crate) fn refused(&self, code: Option<ErrorCode>) {
        let code = code.map_or_else(|| "none".to_owned(), |c| format!("{c:?}"));
        self.refusals.get_or_create(&CodeLabel { code }).inc();
    }

    pub(crate) fn waiting(&self, delta: i64) {
        self.waiting.inc_by(delta);
    }

    pub(crate) fn relaying(&self, delta: i64) {
        self.relaying.inc_by(delta);
    }

    pub(crate) fn paired(&self) {
        self.setups.inc();
    }

    pub(crate) fn relayed(&self, applet_to_console: u64, console_to_applet: u64) {
        let add = |dir, n| {
            self.relayed_bytes
                .get_or_create(&DirLabel { dir })
                .inc_by(n);
        };
        add("applet_to_console", applet_to_console);
        add("console_to_applet", console_to_applet);
    }

    pub(crate) fn reattached(&self) {
        self.reattaches.inc();
    }

    pub(crate) fn registered_after(&self, elapsed: std::time::Duration) {
        self.register_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.inc();
    }
}
