//! A small Internet in network namespaces for the real-NAT tests: a public segment with
//! the gateway, and two home routers that masquerade their LAN and drop unsolicited
//! inbound traffic, each with one host behind it. Needs root, iproute2 and iptables
//! (`.ci/run` installs them); a lab that cannot be built fails the test, it never skips.
//!
//! ```text
//!            gateway 203.0.113.1
//!                    |
//!   [switch: bridge br0 in its own namespace]
//!          |                        |
//!   wan 203.0.113.2          wan 203.0.113.3
//!     router A                 router B
//!   lan 10.0.1.1             lan 10.0.2.1
//!          |                        |
//!   applet 10.0.1.2          console 10.0.2.2
//! ```
//!
//! Each party runs on its own thread that has entered its namespace ([`spawn_in`]):
//! sockets belong to the namespace of the thread that creates them, and threads that
//! thread starts inherit it.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The gateway's address on the public segment.
pub const GATEWAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
/// Router A's public (WAN) address: the applet's address as the gateway sees it.
pub const ROUTER_A_WAN: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2));
/// Router B's public (WAN) address: the console's address as the gateway sees it.
pub const ROUTER_B_WAN: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 3));

/// How the home routers translate source ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Plain MASQUERADE: the source port is kept when it is free (endpoint-independent
    /// mapping in practice), as most home routers do.
    PortPreserving,
    /// `MASQUERADE --random-fully`: a random source port for every new flow, so the port
    /// the gateway saw is not the one the other party's packets would have to reach.
    RandomFully,
}

/// The namespaces of one lab; deleted on drop (also when the test panics).
pub struct Lab {
    prefix: String,
    created: Vec<String>,
}

/// The namespaces of the lab that parties run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Gateway,
    RouterA,
    RouterB,
    Applet,
    Console,
    Switch,
}

impl Host {
    fn suffix(self) -> &'static str {
        match self {
            Host::Gateway => "gw",
            Host::RouterA => "ra",
            Host::RouterB => "rb",
            Host::Applet => "a",
            Host::Console => "c",
            Host::Switch => "sw",
        }
    }
}

impl Lab {
    /// Builds the lab; panics (fails the test) with the failing command and its error if
    /// any step fails.
    pub fn build(nat: Nat) -> Lab {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rsq{}x{run}", std::process::id());
        let mut lab = Lab {
            prefix,
            created: Vec::new(),
        };
        lab.setup(nat);
        lab
    }

    /// The namespace name of `host` (under /run/netns).
    pub fn ns(&self, host: Host) -> String {
        format!("{}{}", self.prefix, host.suffix())
    }

    fn setup(&mut self, nat: Nat) {
        let hosts = [
            Host::Switch,
            Host::Gateway,
            Host::RouterA,
            Host::RouterB,
            Host::Applet,
            Host::Console,
        ];
        for h in hosts {
            let ns = self.ns(h);
            // A namespace of a crashed run whose pid came round again.
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            ip(&["netns", "add", &ns]);
            self.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let sw = self.ns(Host::Switch);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);

        // The public segment: the gateway's and both routers' WAN ports on the switch.
        for (host, dev, addr) in [
            (Host::Gateway, "eth0", "203.0.113.1/24"),
            (Host::RouterA, "wan", "203.0.113.2/24"),
            (Host::RouterB, "wan", "203.0.113.3/24"),
        ] {
            let ns = self.ns(host);
            let port = host.suffix();
            self.veth(&ns, dev, &sw, port);
            ip(&["-n", &sw, "link", "set", port, "master", "br0"]);
            ip(&["-n", &sw, "link", "set", port, "up"]);
            ip(&["-n", &ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        }

        // Each home: a LAN behind its router, the host's default route via the router.
        for (router, host, lan) in [
            (Host::RouterA, Host::Applet, "10.0.1"),
            (Host::RouterB, Host::Console, "10.0.2"),
        ] {
            let (r, h) = (self.ns(router), self.ns(host));
            self.veth(&r, "lan", &h, "eth0");
            ip(&[
                "-n",
                &r,
                "addr",
                "add",
                &format!("{lan}.1/24"),
                "dev",
                "lan",
            ]);
            ip(&["-n", &r, "link", "set", "lan", "up"]);
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{lan}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &h, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &h,
                "route",
                "add",
                "default",
                "via",
                &format!("{lan}.1"),
            ]);
            home_router(&r, nat);
        }
    }

    /// A veth pair with end `a` in namespace `ns_a` and end `b` in `ns_b`.
    fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) {
        ip(&[
            "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ]);
    }

    /// A second LAN shared by the applet and the console only (a veth named `side` in
    /// each: applet 192.168.77.2/24, console 192.168.77.3/24), beside their homes: two
    /// machines of one office network. Their default routes stay via their routers.
    pub fn side_lan(&self) {
        let (a, c) = (self.ns(Host::Applet), self.ns(Host::Console));
        self.veth(&a, "side", &c, "side");
        for (ns, addr) in [(&a, "192.168.77.2/24"), (&c, "192.168.77.3/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", "side"]);
            ip(&["-n", ns, "link", "set", "side", "up"]);
        }
    }

    /// `host` drops every new inbound TCP connection without an answer (a host firewall):
    /// a dial toward it hangs until its timeout.
    pub fn drop_inbound_tcp(&self, host: Host) {
        let ns = self.ns(host);
        run(
            "ip",
            &[
                "netns", "exec", &ns, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--syn", "-j",
                "DROP",
            ],
        );
    }

    /// `host` stops answering: every packet in and out is dropped (its sockets stay open).
    pub fn silence(&self, host: Host) {
        let ns = self.ns(host);
        for chain in ["INPUT", "OUTPUT"] {
            run(
                "ip",
                &[
                    "netns", "exec", &ns, "iptables", "-w", "-I", chain, "-j", "DROP",
                ],
            );
        }
    }

    /// Bytes received so far on interface `dev` of `host`.
    pub fn rx_bytes(&self, host: Host, dev: &str) -> u64 {
        let ns = self.ns(host);
        let path = format!("/sys/class/net/{dev}/statistics/rx_bytes");
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "cat", &path])
            .output()
            .expect("read interface counters");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{ns} {path}: {:?}", out))
    }

    /// The NAT table of router A or B (`conntrack -L`, `iptables -t nat -S`), for
    /// failure messages.
    pub fn dump(&self, host: Host) -> String {
        let ns = self.ns(host);
        let mut out = String::new();
        for args in [
            vec!["netns", "exec", &ns, "iptables", "-t", "nat", "-S"],
            vec!["netns", "exec", &ns, "iptables", "-S"],
            vec!["netns", "exec", &ns, "conntrack", "-L"],
        ] {
            match Command::new("ip").args(&args).output() {
                Ok(o) => {
                    out.push_str(&String::from_utf8_lossy(&o.stdout));
                    out.push_str(&String::from_utf8_lossy(&o.stderr));
                }
                Err(e) => out.push_str(&format!("{args:?}: {e}\n")),
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace removes its veth ends (and so their peers).
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A home router: forwarding on, the LAN masqueraded on the WAN port, inbound from the
/// WAN only for flows the LAN started (ESTABLISHED, RELATED), nothing else, neither
/// forwarded nor to the router itself (nothing listens there; a router that answered
/// unsolicited packets with ICMP would also leave a conntrack entry that a later
/// outbound packet of the same flow would clash with).
fn home_router(ns: &str, nat: Nat) {
    // /proc/sys/net is the opener's namespace's (no sysctl binary needed).
    let forward = "echo 1 > /proc/sys/net/ipv4/ip_forward";
    run("ip", &["netns", "exec", ns, "sh", "-c", forward]);
    let mut masquerade = vec![
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "wan",
        "-j",
        "MASQUERADE",
    ];
    if nat == Nat::RandomFully {
        masquerade.push("--random-fully");
    }
    let established = [
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ];
    let rules: Vec<Vec<&str>> = vec![
        masquerade,
        vec!["-P", "FORWARD", "DROP"],
        vec!["-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"],
        [
            &["-A", "FORWARD", "-i", "wan", "-o", "lan"][..],
            &established,
        ]
        .concat(),
        vec![
            "-A",
            "FORWARD",
            "-i",
            "wan",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "DROP",
        ],
        [&["-A", "INPUT", "-i", "wan"][..], &established].concat(),
        vec!["-A", "INPUT", "-i", "wan", "-j", "DROP"],
    ];
    for rule in rules {
        let mut args = vec!["netns", "exec", ns, "iptables", "-w"];
        args.extend(rule);
        run("ip", &args);
    }
}

fn ip(args: &[&str]) {
    run("ip", args);
}

/// Runs a set-up command; panics with its output if it cannot run or fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{cmd}` ({e}): the NAT tests need root, iproute2 and iptables \
             (.ci/run installs them)"
        )
    });
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `f` on a new thread inside network namespace `ns`, on that thread's own
/// current-thread tokio runtime; the thread ends when the future does.
pub fn spawn_in<F, Fut, T>(ns: &str, f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::Builder::new()
        .name(ns.to_owned())
        .spawn(move || {
            let file =
                std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(f())
        })
        .expect("spawn a party thread")
}
