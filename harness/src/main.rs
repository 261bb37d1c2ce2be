//! `pinhole`: NAT/firewall emulator and NAT-traversal test harness.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use harness::cli;
use std::path::PathBuf;
use std::process::ExitCode;

/// NAT/firewall emulator and NAT-traversal test harness.
///
/// Exit codes: 0 every expectation held, 1 some expectation failed, 2 invalid input
/// (nothing was started), 3 the environment cannot run it.
#[derive(Parser, Debug)]
#[command(name = "pinhole", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FabricArg {
    /// In-process hosts under a virtual clock: deterministic, no privileges.
    Virtual,
    /// Linux network namespaces behind TUN devices; real programs run in the hosts.
    Kernel,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios (files, or folders searched for *.yaml) and their matrices.
    Run {
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Override every scenario's `fabric:`.
        #[arg(long, value_enum)]
        fabric: Option<FabricArg>,
        /// Report folder (report.json, junit.xml and summary.md are written there).
        #[arg(long, default_value = "pinhole-report")]
        report: PathBuf,
        /// Write no report folder.
        #[arg(long, conflicts_with = "report")]
        no_report: bool,
        /// Cells run at once (default: the number of CPUs).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Run only shard I of N (1-based), cells dealt round-robin: `--shard 2/4`.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Print report.json on stdout instead of the readable summary.
        #[arg(long)]
        json: bool,
        /// Print only failures and the summary.
        #[arg(short, long)]
        quiet: bool,
        /// Write a pcap file per interface (host, NAT or firewall side) and cell into DIR.
        #[arg(long, value_name = "DIR")]
        pcap: Option<PathBuf>,
        /// Most records kept in each cell's event log (report folder, `events/`); repeated
        /// drops and refusals are counted, not recorded one by one. 0 keeps only the
        /// summaries. Default 100000.
        #[arg(long, value_name = "N")]
        events_limit: Option<usize>,
    },
    /// Build a scenario's topology on the kernel fabric and keep it up until `down` or
    /// Ctrl-C; run commands in its hosts with `exec`.
    Up {
        /// The scenario file whose topology to build (its steps are not run).
        file: PathBuf,
        /// Name of this topology (default: the file name); several can be up at once.
        #[arg(long)]
        id: Option<String>,
        /// Which matrix cell's topology, counting from 0.
        #[arg(long, default_value_t = 0)]
        cell: usize,
    },
    /// Run a command inside a host of a topology started with `up`.
    Exec {
        /// The topology (needed when more than one is up).
        #[arg(long)]
        id: Option<String>,
        /// The host.
        host: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Tear down a topology started with `up`.
    Down {
        /// The topology (needed when more than one is up).
        #[arg(long)]
        id: Option<String>,
    },
    /// Classify the NAT in front of this machine (RFC 5780) against a STUN server with an
    /// alternate address, and write a NAT profile a scenario can replay.
    Probe {
        /// The STUN server, `HOST[:PORT]` (port 3478 by default).
        server: String,
        /// Write the profile to FILE (`-`: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
        /// Also search the UDP binding lifetime, up to this long (e.g. `5m`); takes several
        /// times that.
        #[arg(long, value_name = "DURATION")]
        lifetime_max: Option<String>,
    },
    /// Run a STUN or TURN server on this machine's own sockets until SIGINT/SIGTERM.
    Serve {
        #[command(subcommand)]
        what: ServeWhat,
    },
    /// Relay COUNT datagrams through a TURN server to a UDP echo peer and count the echoes
    /// (or, with --tcp-relay, COUNT messages between two RFC 6062 TCP allocations); exits
    /// 0 only when every one came back (interop checks against other TURN servers).
    #[command(hide = true)]
    TurnClient {
        /// The TURN server, `HOST[:PORT]` (port 3478 by default).
        server: String,
        /// Long-term credentials, `NAME:PASSWORD`.
        #[arg(long, value_name = "NAME:PASS")]
        user: String,
        /// The UDP echo peer, `ADDR:PORT` (e.g. coturn's `turnutils_peer`); not with
        /// --tcp-relay.
        #[arg(long, value_name = "ADDR:PORT", required_unless_present = "tcp_relay")]
        peer: Option<std::net::SocketAddr>,
        /// RFC 6062 (implies --tcp): two TCP allocations, the first connects to the
        /// second's relayed address, both bind data connections, the second echoes what
        /// the first sends as raw bytes.
        #[arg(long, conflicts_with_all = ["peer", "channel", "proxy"])]
        tcp_relay: bool,
        /// Bind a channel and send ChannelData (default: Send indications).
        #[arg(long)]
        channel: bool,
        /// TURN over TCP (default: UDP).
        #[arg(long)]
        tcp: bool,
        /// Datagrams to send.
        #[arg(long, default_value_t = 20)]
        count: u32,
        /// Payload bytes of each (at least 4).
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Give up after this long.
        #[arg(long, default_value = "10s")]
        timeout: String,
        /// Reach the server through this HTTP CONNECT proxy (with --tcp).
        #[arg(long, value_name = "ADDR:PORT")]
        proxy: Option<std::net::SocketAddr>,
        /// The proxy's Basic credentials.
        #[arg(long, value_name = "NAME:PASS")]
        proxy_user: Option<String>,
        /// TURN over TLS (with --tcp); any server certificate is accepted.
        #[arg(long)]
        tls: bool,
    },
    /// Measure pinhole against Linux's own forwarding (figures are printed, never judged).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Load generator for `bench`: rate-unlimited UDP to ADDR:PORT for SECONDS.
    #[command(hide = true)]
    BenchUdpSend {
        #[arg(long)]
        to: std::net::SocketAddr,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        seconds: f64,
        /// Datagrams per system call (1: `sendto`, more: `sendmmsg`).
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Sink for `bench`: counts UDP datagrams on PORT for SECONDS from the first one.
    #[command(hide = true)]
    BenchUdpRecv {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seconds: f64,
    },
    /// Load generator for `bench`: one TCP connection writing for SECONDS.
    #[command(hide = true)]
    BenchTcpSend {
        #[arg(long)]
        to: std::net::SocketAddr,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        seconds: f64,
    },
    /// Sink for `bench`: counts TCP bytes on PORT for SECONDS from the first one.
    #[command(hide = true)]
    BenchTcpRecv {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seconds: f64,
    },
    /// The do-nothing forwarder of `bench relay`: port pairs from stdin, then forwards.
    #[command(hide = true)]
    BenchRelayForwarder {
        #[arg(long)]
        address: std::net::IpAddr,
        #[arg(long)]
        first_port: u16,
    },
    /// Client for `bench latency`: COUNT SIP OPTIONS round trips to ADDR:PORT, as JSON.
    #[command(hide = true)]
    BenchSipOptions {
        #[arg(long)]
        to: std::net::SocketAddr,
        #[arg(long)]
        count: u32,
    },
    /// Check scenarios without running them: syntax, names, addresses, expectations.
    Validate {
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct ServeCommon {
    /// The address and port to listen on; a concrete address of this machine (it is also
    /// the relayed address of TURN allocations and the RFC 5780 primary address).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3478")]
    listen: std::net::SocketAddr,
    /// A second address of this machine: enables RFC 5780 behaviour discovery
    /// (CHANGE-REQUEST, OTHER-ADDRESS), with the alternate port = the port + 1.
    #[arg(long, value_name = "ADDR")]
    alternate: Option<std::net::IpAddr>,
}

#[derive(Subcommand, Debug)]
enum ServeWhat {
    /// STUN Binding server (RFC 8489; RFC 5780 with --alternate).
    Stun {
        #[command(flatten)]
        common: ServeCommon,
    },
    /// SIP proxy and registrar (RFC 3261, transaction-stateful, Record-Route, RFC 3581
    /// rport) on UDP and TCP, the scenario `sip-proxy` service without a media relay.
    Proxy {
        /// The address and port to listen on (UDP and TCP); a concrete address of this
        /// machine (it goes into Via and Record-Route).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5060")]
        listen: std::net::SocketAddr,
        /// A domain the proxy is responsible for besides its own address (repeatable).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Rewrite the Contact of NATed dialog requests and responses to their source
        /// address (all four NAT tests on), as OpenSIPS's fix_nated_contact does.
        #[arg(long)]
        fix_contact: bool,
    },
    /// TURN server (RFC 8656 over UDP and TCP, RFC 6062 TCP allocations, long-term
    /// credentials), answering STUN Binding on the same port (RFC 5780 with --alternate),
    /// as coturn does.
    Turn {
        #[command(flatten)]
        common: ServeCommon,
        /// Realm of the long-term credentials.
        #[arg(long, default_value = "pinhole")]
        realm: String,
        /// A user, `NAME:PASSWORD` (repeat for more; at least one).
        #[arg(long = "user", value_name = "NAME:PASS")]
        users: Vec<String>,
        /// Relayed ports, `A-B`.
        #[arg(long, value_name = "A-B", default_value = "49152-65535")]
        relay_ports: String,
        /// Allocations allowed per user at once.
        #[arg(long, value_name = "N")]
        quota: Option<u32>,
        /// Do not accept TURN over TCP.
        #[arg(long)]
        no_tcp: bool,
        /// Accept TURN over TLS on this TCP port (with --tls-cert/--tls-key, else a
        /// self-signed certificate made at start).
        #[arg(long, value_name = "PORT")]
        tls_port: Option<u16>,
        /// The TLS certificate chain, a PEM file (the server's certificate first).
        #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_port"])]
        tls_cert: Option<std::path::PathBuf>,
        /// The TLS private key, a PEM file (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Password algorithms offered (RFC 8489 §9.2: PASSWORD-ALGORITHMS), in order of
        /// preference, comma-separated: `sha256,md5` (the default), `md5`, or `none`
        /// (RFC 5389 behaviour). Clients that name none get the MD5 key anyway.
        #[arg(long, value_name = "LIST")]
        password_algorithms: Option<String>,
        /// Also accept the channel numbers 0x5000-0x7FFF of RFC 5766 (RFC 8656 reserves
        /// them; older clients such as turnutils_uclient still use them).
        #[arg(long)]
        legacy_channels: bool,
    },
    /// Media relay (MediaProxy-style RTP relay with strict latching) controlled over
    /// rtpengine's ng protocol: what Kamailio's `rtpengine` module, pinhole's proxy (through
    /// a `dispatcher` or directly) and `pinhole bench relay` talk to. Runs until an ng
    /// `drain` has let every session end, --duration passes, or it is stopped.
    Relay {
        /// The address media ports are bound on (a concrete address of this machine).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
        listen: std::net::IpAddr,
        /// Media ports, `A-B` (RTP on even ports, RTCP on the next odd one).
        #[arg(long, value_name = "A-B", default_value = "40000-40999")]
        ports: String,
        /// The ng control address (default: the --listen address, port 2223).
        #[arg(long, value_name = "ADDR:PORT")]
        ng: Option<std::net::SocketAddr>,
        /// Shared secret of the control channel (every ng message signed, HMAC-SHA256).
        #[arg(long)]
        secret: Option<String>,
        /// Latching: strict (the signalled source only, within the window), first-packet
        /// (MediaProxy's), off (asymmetric clients).
        #[arg(long, default_value = "strict")]
        latching: String,
        /// How long after an offer/answer a side may latch.
        #[arg(long, default_value = "5s")]
        latching_window: String,
        /// End a session with no media for this long once media has flowed.
        #[arg(long, default_value = "60s")]
        idle_timeout: String,
        /// End a session that never carried media this long after signalling.
        #[arg(long, default_value = "90s")]
        idle_timeout_before_media: String,
        /// The address written into SDP instead of --listen (a relay behind 1:1 NAT).
        #[arg(long, value_name = "ADDR")]
        advertised: Option<std::net::IpAddr>,
        /// Streams per session at most.
        #[arg(long, default_value_t = 64)]
        streams_max: usize,
        /// A User-Agent pattern of asymmetric clients (case-insensitive, `*` wildcard;
        /// repeatable): their media goes to the SDP address, no latching.
        #[arg(long = "asymmetric-client", value_name = "PATTERN")]
        asymmetric_clients: Vec<String>,
        /// Append one accounting record (JSON line) per ended session to FILE.
        #[arg(long, value_name = "FILE")]
        accounting: Option<std::path::PathBuf>,
        /// Exit after this long (default: run until stopped or drained).
        #[arg(long)]
        duration: Option<String>,
        /// Shard sessions over this many threads (each its slice of --ports and its own ng
        /// port, ng port + 1 + i, behind a dispatcher on --ng).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// UDP packets/s (64 and 1200 bytes) and TCP throughput from a host behind one NAT to a
    /// host on the internet: pinhole's kernel fabric and Linux's nftables masquerade side by
    /// side, with the ratio and the engine's memory. Needs namespaces (exit 3 without).
    Nat {
        /// Length of each measurement, seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print one JSON object on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// How the UDP sender offers its load: `sendmmsg` (64 datagrams a system call, as
        /// fast as one core can) or `sendto` (one datagram a call).
        #[arg(long, value_enum, default_value = "sendmmsg")]
        sender: harness::cmd::bench::nat::Sender,
    },
    /// SIPp calls (REGISTER once, then INVITE/ACK/BYE along the Record-Route) through
    /// Kamailio with its stock configuration and through pinhole's proxy: CPU time per 1,000
    /// calls at a fixed rate and the highest rate with 0 failed calls. Needs namespaces and
    /// sipp (exit 3 without).
    Proxy {
        /// Length of every load (the CPU run and each rate tried), seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// The fixed rate of the CPU measurement, calls/s.
        #[arg(long, default_value_t = 200)]
        cpu_rate: u32,
        /// The rates tried in order for the highest one with 0 failed calls, calls/s.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "100,200,400,600,800,1000,1200,1500"
        )]
        rates: Vec<u32>,
        /// Print one JSON object on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Simulated G.711 calls (172-byte RTP, 50 packets/s each way) through a media relay at
    /// stepped rates: delivered packets/s, loss, the relay's CPU and packets/s per core,
    /// p50/p99/p999 one-way latency added, memory per session. `--compare` runs the same
    /// steps through a do-nothing forwarder, rtpengine (userspace), coturn (TURN channels)
    /// and pinhole's relay; `--overload` caps the relay's CPU and checks that every stream
    /// recovers after 2× its lossless rate. Needs namespaces (exit 3 without).
    Relay(harness::cmd::bench::relay::RelayBenchOptions),
    /// Round-trip times through pinhole's drivers on the kernel fabric: UDP echo through
    /// one NAT with 0-delay links and with a 30 ms link (p50/p99), SIP OPTIONS through
    /// `pinhole serve proxy` and through a scenario's `sip-proxy` service, and the CPU an
    /// idle `serve proxy` / `serve turn` uses. Needs namespaces (exit 3 without).
    Latency {
        /// Round trips per measurement with 0-delay links.
        #[arg(long, default_value_t = 2000)]
        count: u32,
        /// Round trips with the 30 ms link (60 ms each).
        #[arg(long, default_value_t = 200)]
        delayed_count: u32,
        /// How long the idle servers' CPU is measured, seconds.
        #[arg(long, default_value_t = 10.0)]
        idle_seconds: f64,
        /// Print one JSON object on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
    },
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').context("--shard takes I/N, like 1/4")?;
    let (i, n): (usize, usize) = (
        i.trim().parse().context("--shard I must be a number")?,
        n.trim().parse().context("--shard N must be a number")?,
    );
    if n == 0 || i == 0 || i > n {
        bail!("--shard {s}: I must be between 1 and N");
    }
    Ok((i, n))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PINHOLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match args.command {
        Command::Validate { paths } => Ok(cli::validate(&paths)),
        Command::Up { file, id, cell } => harness::cmd::interactive::up(&file, id.as_deref(), cell),
        Command::Exec { id, host, command } => {
            harness::cmd::interactive::exec(id.as_deref(), &host, &command)
        }
        Command::Bench {
            what:
                BenchWhat::Nat {
                    seconds,
                    json,
                    sender,
                },
        } => harness::cmd::bench::nat::nat(&harness::cmd::bench::nat::NatBenchOptions {
            seconds,
            json,
            sender,
        }),
        Command::Bench {
            what:
                BenchWhat::Proxy {
                    seconds,
                    cpu_rate,
                    rates,
                    json,
                },
        } => harness::cmd::bench::proxy::proxy(&harness::cmd::bench::proxy::ProxyBenchOptions {
            seconds,
            cpu_rate,
            rates,
            json,
        }),
        Command::Bench {
            what:
                BenchWhat::Latency {
                    count,
                    delayed_count,
                    idle_seconds,
                    json,
                },
        } => harness::cmd::bench::latency::latency(
            &harness::cmd::bench::latency::LatencyBenchOptions {
                count,
                delayed_count,
                idle_seconds,
                json,
            },
        ),
        Command::Bench {
            what: BenchWhat::Relay(opts),
        } => harness::cmd::bench::relay::relay(&opts),
        Command::BenchRelayForwarder {
            address,
            first_port,
        } => harness::cmd::bench::relay::forwarder::forwarder(address, first_port),
        Command::BenchSipOptions { to, count } => {
            harness::cmd::bench::latency::sip_options(to, count)
        }
        Command::BenchUdpSend {
            to,
            size,
            seconds,
            batch,
        } => harness::cmd::bench::load::udp_send(to, size, seconds, batch),
        Command::BenchUdpRecv { port, seconds } => {
            harness::cmd::bench::load::udp_recv(port, seconds)
        }
        Command::BenchTcpSend { to, size, seconds } => {
            harness::cmd::bench::load::tcp_send(to, size, seconds)
        }
        Command::BenchTcpRecv { port, seconds } => {
            harness::cmd::bench::load::tcp_recv(port, seconds)
        }
        Command::Serve {
            what:
                ServeWhat::Proxy {
                    listen,
                    domains,
                    fix_contact,
                },
        } => harness::cmd::serve::serve_proxy(listen, domains, fix_contact),
        Command::Serve {
            what:
                ServeWhat::Relay {
                    listen,
                    ports,
                    ng,
                    secret,
                    latching,
                    latching_window,
                    idle_timeout,
                    idle_timeout_before_media,
                    advertised,
                    streams_max,
                    asymmetric_clients,
                    accounting,
                    duration,
                    threads,
                },
        } => (|| {
            let d = |s: &str, what: &str| {
                harness::scenario::values::parse_duration(s)
                    .map_err(|e| anyhow::anyhow!("{what}: {e}"))
            };
            let o = harness::cmd::serve_relay::RelayServeOptions {
                listen,
                ports: harness::cmd::serve::parse_port_range(&ports).context("--ports")?,
                ng: ng.unwrap_or(std::net::SocketAddr::new(listen, 2223)),
                secret,
                latching: harness::cmd::serve_relay::parse_latching(&latching)
                    .context("--latching")?,
                latching_window: d(&latching_window, "--latching-window")?,
                idle_timeout: d(&idle_timeout, "--idle-timeout")?,
                idle_timeout_before_media: d(
                    &idle_timeout_before_media,
                    "--idle-timeout-before-media",
                )?,
                advertised,
                streams_max,
                asymmetric_clients,
                accounting,
                duration: duration.map(|x| d(&x, "--duration")).transpose()?,
                threads,
            };
            harness::cmd::serve_relay::serve_relay(&o)
        })(),
        Command::Serve { what } => (|| {
            let opts = match what {
                ServeWhat::Proxy { .. } | ServeWhat::Relay { .. } => unreachable!("matched above"),
                ServeWhat::Stun { common } => harness::cmd::serve::ServeOptions {
                    turn: false,
                    listen: common.listen,
                    alternate: common.alternate,
                    realm: String::new(),
                    users: Vec::new(),
                    relay_ports: (49152, 65535),
                    quota: None,
                    tcp: false,
                    tls_port: None,
                    tls_cert: None,
                    password_algorithms: None,
                    legacy_channels: false,
                },
                ServeWhat::Turn {
                    common,
                    realm,
                    users,
                    relay_ports,
                    quota,
                    no_tcp,
                    tls_port,
                    tls_cert,
                    tls_key,
                    password_algorithms,
                    legacy_channels,
                } => harness::cmd::serve::ServeOptions {
                    turn: true,
                    listen: common.listen,
                    alternate: common.alternate,
                    realm,
                    users,
                    relay_ports: harness::cmd::serve::parse_port_range(&relay_ports)
                        .context("--relay-ports")?,
                    quota,
                    tcp: !no_tcp,
                    tls_port,
                    tls_cert: tls_cert.zip(tls_key),
                    password_algorithms: password_algorithms
                        .map(|l| harness::cmd::serve::parse_password_algorithms(&l))
                        .transpose()
                        .context("--password-algorithms")?,
                    legacy_channels,
                },
            };
            harness::cmd::serve::serve(&opts)
        })(),
        Command::TurnClient {
            server,
            user,
            peer,
            channel,
            tcp,
            count,
            size,
            timeout,
            proxy,
            proxy_user,
            tls,
            tcp_relay,
        } => (|| {
            let timeout = harness::scenario::values::parse_duration(&timeout)
                .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
            harness::cmd::serve::turn_client(&harness::cmd::serve::TurnClientOptions {
                server,
                user,
                peer,
                channel,
                tcp: tcp || tcp_relay,
                tcp_relay,
                count,
                size,
                timeout,
                proxy,
                proxy_user,
                tls,
            })
        })(),
        Command::Down { id } => harness::cmd::interactive::down(id.as_deref()),
        Command::Probe {
            server,
            out,
            lifetime_max,
        } => (|| {
            let lifetime_max = lifetime_max
                .map(|d| {
                    harness::scenario::values::parse_duration(&d)
                        .map_err(|e| anyhow::anyhow!("--lifetime-max: {e}"))
                })
                .transpose()?;
            harness::cmd::probe::probe(&harness::cmd::probe::ProbeOptions {
                server,
                out,
                lifetime_max,
            })
        })(),
        Command::Run {
            paths,
            fabric,
            report,
            no_report,
            jobs,
            shard,
            json,
            quiet,
            pcap,
            events_limit,
        } => (|| {
            let shard = shard.as_deref().map(parse_shard).transpose()?;
            let opts = cli::RunOptions {
                fabric: fabric.map(|f| match f {
                    FabricArg::Virtual => harness::scenario::model::Fabric::Virtual,
                    FabricArg::Kernel => harness::scenario::model::Fabric::Kernel,
                }),
                report: (!no_report).then_some(report),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                    .max(1),
                shard,
                json,
                quiet,
                pcap,
                events_limit,
            };
            cli::run(&paths, &opts)
        })(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pinhole: {e:#}");
            ExitCode::from(cli::EXIT_ENVIRONMENT)
        }
    }
}
