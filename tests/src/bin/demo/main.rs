//! `cargo xtask demo`: a self-contained lab. Two network namespaces joined by veth, Levee
//! attached in native mode on the protected side, and a short scenario: legitimate clients,
//! a single-source UDP flood (first in monitor mode, then enforced), then random-source
//! (spoofed) UDP, SYN and ACK floods, which strict mode (engaged by detection) drops in the
//! driver while the clients keep their service. Prints what happened per phase. Traffic never
//! leaves the two namespaces, which are removed at the end, also on Ctrl-C.
//!
//! `--escalation` plays the second scenario instead ([`escalation`]): announcements reaching
//! a real upstream router and their withdrawal. `--fleet` plays the third ([`fleet`]): three
//! nodes sharing what one of them learns through a route reflector.

mod escalation;
mod fleet;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr, TcpListener, UdpSocket},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use filter_common::{
    abi::Mode,
    frames::{FrameSpec, L4},
    parse::{TCP_ACK, TCP_SYN},
};
use levee_tests::{
    daemon::DaemonLab,
    netns::{CLIENT_V4, Lab, PROTECTED_V4},
    sender::send_frames,
};

/// Legitimate clients: the first three client addresses.
const LEGIT: [&str; 3] = [CLIENT_V4[0], CLIENT_V4[1], CLIENT_V4[2]];
/// The single flooding source (also on the client's veth).
const FLOODER: &str = CLIENT_V4[3];
const UDP_PORT: u16 = 9000;
const TCP_PORT: u16 = 8080;
/// Flood frames per phase.
const FLOOD_FRAMES: usize = 400_000;

/// Set by SIGINT/SIGTERM: the demo stops after the current phase and removes the lab.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let scenario = if std::env::args().any(|a| a == "--escalation") {
        escalation::run
    } else if std::env::args().any(|a| a == "--fleet") {
        fleet::run
    } else {
        run
    };
    if let Err(e) = scenario() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

struct Phase {
    name: &'static str,
    mode: Mode,
    flood: Option<Vec<u8>>,
}

struct Row {
    name: &'static str,
    mode: Mode,
    flood_sent: u64,
    passed: u64,
    dropped: u64,
    legit_sent: u64,
    legit_delivered: u64,
    tcp_ok: u32,
    tcp_tried: u32,
    drops: Vec<(String, u64)>,
    /// What the detection engine did during the phase, and the mode at its end.
    detection: String,
}

fn run() -> Result<()> {
    println!(
        "Levee lab demo: two namespaces joined by veth, Levee on the protected side (native XDP)"
    );
    let mut daemon = DaemonLab::new();
    daemon.write_config(DEMO_CONFIG);
    daemon.start();
    let lab = &daemon.lab;
    println!(
        "levee run is protecting {} in the protected namespace; levee status says:",
        lab.iface
    );
    print!("{}", daemon.cli_ok(&["status"]));
    // On veth, frames a program sends back with XDP_TX (the SYN-ACKs of strict mode's
    // cookies) reach the other end only if it runs an XDP program too: the client's end gets
    // Levee's program in mode off, which passes everything. A real NIC needs nothing of this.
    let _client_xdp = lab.pass_all_on_client_end();

    let (udp, listener) = lab.protected.run(|| -> Result<_> {
        let udp = UdpSocket::bind((PROTECTED_V4, UDP_PORT))?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let tcp = TcpListener::bind((PROTECTED_V4, TCP_PORT))?;
        Ok((udp, tcp))
    })?;
    // Count datagrams from the legitimate clients as they arrive (a burst would overflow the
    // socket's buffer if it waited for the end of the phase), and answer them as a real
    // service would: a client the host answered is a known flow to strict mode. (Spoofed
    // sources are not answered: they live outside the lab and nothing may be sent there.)
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    thread::spawn(move || {
        let legit: Vec<IpAddr> = LEGIT.iter().map(|a| a.parse().unwrap()).collect();
        let mut buf = [0u8; 2048];
        loop {
            if let Ok((_, from)) = udp.recv_from(&mut buf)
                && legit.contains(&from.ip())
            {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = udp.send_to(b"ok", from);
            }
        }
    });
    // Accept and close TCP connections in the background.
    thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let server_mac = Lab::mac(&lab.protected, &lab.iface);
    let client_mac = Lab::mac(&lab.client, "lv1");
    let frames = |spec: &dyn Fn(usize) -> FrameSpec| -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..FLOOD_FRAMES {
            let mut f = spec(i).build();
            f[0..6].copy_from_slice(&server_mac);
            f[6..12].copy_from_slice(&client_mac);
            out.extend_from_slice(&f);
        }
        out
    };
    let dst: IpAddr = PROTECTED_V4.parse()?;
    let udp_l4 = L4::Udp {
        sport: 40000,
        dport: UDP_PORT,
    };
    let single = frames(&|_| FrameSpec::new(FLOODER.parse().unwrap(), dst, udp_l4).payload(22));
    let spoofed = frames(&|i| FrameSpec::new(spoofed_source(i), dst, udp_l4).payload(22));
    let tcp = |flags: u8| {
        frames(&|i| {
            FrameSpec::new(
                spoofed_source(i),
                dst,
                L4::Tcp {
                    sport: 1024 + (i % 60000) as u16,
                    dport: TCP_PORT,
                    flags,
                },
            )
            .payload(10)
        })
    };
    let syn = tcp(TCP_SYN);
    let ack = tcp(TCP_ACK);

    let phases = [
        Phase {
            name: "legitimate clients only",
            mode: Mode::Enforce,
            flood: None,
        },
        Phase {
            name: "single-source UDP flood",
            mode: Mode::Monitor,
            flood: Some(single.clone()),
        },
        Phase {
            name: "single-source UDP flood",
            mode: Mode::Enforce,
            flood: Some(single),
        },
        Phase {
            name: "random-source UDP flood",
            mode: Mode::Enforce,
            flood: Some(spoofed),
        },
        Phase {
            name: "random-source SYN flood",
            mode: Mode::Enforce,
            flood: Some(syn),
        },
        Phase {
            name: "random-source ACK flood",
            mode: Mode::Enforce,
            flood: Some(ack),
        },
    ];
    let mut rows = Vec::new();
    for phase in &phases {
        if INTERRUPTED.load(Ordering::SeqCst) {
            println!("interrupted: tearing the lab down");
            break;
        }
        println!("phase: {} (levee mode {})", phase.name, phase.mode.name());
        daemon.cli_ok(&["mode", phase.mode.name()]);
        // The enforced single-source flood is looked at as an operator would: a few dropped
        // frames captured, and why the flooder is dropped.
        let look = phase.flood.is_some() && phase.mode == Mode::Enforce && rows.len() == 2;
        let capture = look.then(|| start_capture(&daemon)).transpose()?;
        rows.push(run_phase(&daemon, &received, phase)?);
        if let Some((child, file)) = capture {
            show_capture(child, &file)?;
            println!(
                "$ levee explain {FLOODER} --proto udp --sport 40000 --dport {UDP_PORT} --dst {PROTECTED_V4}"
            );
            print!(
                "{}",
                daemon.cli_ok(&[
                    "explain",
                    FLOODER,
                    "--proto",
                    "udp",
                    "--sport",
                    "40000",
                    "--dport",
                    &UDP_PORT.to_string(),
                    "--dst",
                    PROTECTED_V4,
                ])
            );
        }
    }
    print_table(&rows);
    println!();
    println!("levee stats at the end:");
    print!("{}", daemon.cli_ok(&["stats"]));
    if !daemon.stop() {
        anyhow::bail!("levee run did not stop cleanly: {}", daemon.log());
    }
    println!("levee stopped and detached; the lab is removed");
    Ok(())
}

/// `levee capture` of the flooder's first five dropped frames, into a file of the lab.
fn start_capture(daemon: &DaemonLab) -> Result<(std::process::Child, std::path::PathBuf)> {
    let file = daemon.dir.join("flood.pcapng");
    let source = format!("{FLOODER}/32");
    let args = [
        "capture", "--source", &source, "--action", "drop", "--count", "5", "-w",
    ];
    let child = daemon
        .cli_command(&args)
        .arg(&file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("levee capture")?;
    // The capture is on once the daemon says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !daemon.log().contains("capture started") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    Ok((child, file))
}

/// Waits for the capture and prints its frames as tcpdump reads them.
fn show_capture(mut child: std::process::Child, file: &std::path::Path) -> Result<()> {
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "levee capture failed: {status}");
    println!(
        "$ levee capture --source {FLOODER}/32 --action drop --count 5 -w flood.pcapng; tcpdump -nn -r flood.pcapng"
    );
    let out = std::process::Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(file)
        .stderr(std::process::Stdio::null())
        .output()
        .context("tcpdump")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Enforce mode, per-source limits well above what a legitimate client sends, a penalty for
/// offenders, and per-class ceilings that cap a spoofed flood.
const DEMO_CONFIG: &str = r#"
mode = "enforce"
penalty = "30s"

[limits.udp]
pps = 2000
burst = 400

[limits.tcp_syn]
pps = 50
burst = 20

[aggregate.udp]
pps = 20000
burst = 2000

[aggregate.tcp_syn]
pps = 2000
burst = 200
"#;

/// Distinct spoofed sources inside the benchmarking range 198.18.0.0/15, away from the lab's
/// own /24 (no packet is ever sent to them: the namespaces have no route out).
fn spoofed_source(i: usize) -> IpAddr {
    let n = 256 + (i.wrapping_mul(40503) % (131_072 - 256)) as u32;
    IpAddr::from((0xc612_0000u32 | n).to_be_bytes())
}

/// `levee stats` as (action, reason) -> packets.
fn stats(daemon: &DaemonLab) -> HashMap<(String, String), u64> {
    daemon
        .stats()
        .into_iter()
        .map(|c| ((c.action, c.reason), c.packets))
        .collect()
}

fn run_phase(daemon: &DaemonLab, received: &AtomicU64, phase: &Phase) -> Result<Row> {
    let lab = &daemon.lab;
    received.store(0, Ordering::SeqCst);
    let before = stats(daemon);
    let decisions_before = daemon.status().decisions;
    let done = AtomicBool::new(false);
    let (legit_sent, tcp, flood_sent) = thread::scope(|s| -> Result<_> {
        let flood = s.spawn(|| -> Result<u64> {
            let Some(frames) = &phase.flood else {
                return Ok(0);
            };
            let len = frames.len() / FLOOD_FRAMES;
            lab.client
                .run(|| send_frames("lv1", frames, len))
                .context("flood sender")
        });
        let legit = s.spawn(|| legit_clients(lab, &done));
        let flood_sent = flood.join().expect("flood thread")?;
        if phase.flood.is_none() {
            thread::sleep(Duration::from_millis(1500));
        }
        done.store(true, Ordering::SeqCst);
        let (sent, tcp) = legit.join().expect("legit thread")?;
        Ok((sent, tcp, flood_sent))
    })?;
    thread::sleep(Duration::from_millis(100));
    let after = stats(daemon);
    let legit_delivered = received.swap(0, Ordering::SeqCst);
    let delta = |actions: &[&str]| -> u64 {
        after
            .iter()
            .filter(|((a, _), _)| actions.contains(&a.as_str()))
            .map(|(k, n)| n - before.get(k).copied().unwrap_or(0))
            .sum()
    };
    Ok(Row {
        name: phase.name,
        mode: phase.mode,
        flood_sent,
        passed: delta(&["pass", "would_drop"]),
        dropped: delta(&["drop"]),
        legit_sent,
        legit_delivered,
        tcp_ok: tcp.0,
        tcp_tried: tcp.1,
        drops: drops(&before, &after),
        detection: detection_summary(daemon, &decisions_before),
    })
}

/// Each legitimate client sends 200 datagrams a second and opens a TCP connection every
/// half second until `done`; returns datagrams sent and (connections made, tried).
fn legit_clients(lab: &Lab, done: &AtomicBool) -> Result<(u64, (u32, u32))> {
    lab.client.run(|| -> Result<_> {
        let socks = LEGIT
            .iter()
            .map(|a| UdpSocket::bind((*a, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let target = SocketAddr::new(PROTECTED_V4.parse()?, UDP_PORT);
        let (mut sent, mut ok, mut tried) = (0u64, 0u32, 0u32);
        let start = Instant::now();
        let mut tick = 0u64;
        while !done.load(Ordering::SeqCst) || tick < 20 {
            for s in &socks {
                if s.send_to(b"hello from a real listener", target).is_ok() {
                    sent += 1;
                }
            }
            if tick.is_multiple_of(100) {
                for a in LEGIT {
                    tried += 1;
                    if tcp_connect(a, SocketAddr::new(PROTECTED_V4.parse()?, TCP_PORT)) {
                        ok += 1;
                    }
                }
            }
            tick += 1;
            let next = start + Duration::from_millis(5 * tick);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
        Ok((sent, (ok, tried)))
    })
}

fn tcp_connect(src: &str, dst: SocketAddr) -> bool {
    let Ok(sock) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
        return false;
    };
    let Ok(src) = format!("{src}:0").parse::<SocketAddr>() else {
        return false;
    };
    sock.bind(&src.into()).is_ok()
        && sock
            .connect_timeout(&dst.into(), Duration::from_secs(2))
            .is_ok()
}

/// Packets dropped (or, in monitor mode, that would have been) by reason during the phase.
fn drops(
    before: &HashMap<(String, String), u64>,
    after: &HashMap<(String, String), u64>,
) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = after
        .iter()
        .filter(|((a, _), _)| a != "pass")
        .map(|((a, r), n)| {
            (
                format!("{a} {r}"),
                n - before.get(&(a.clone(), r.clone())).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}

/// The engine's decisions during a phase (from `levee status`) and the mode after it.
fn detection_summary(daemon: &DaemonLab, before: &BTreeMap<String, u64>) -> String {
    let status = daemon.status();
    let mut parts: Vec<String> = status
        .decisions
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| format!("{k} {d}"))
        })
        .collect();
    if parts.is_empty() {
        parts.push("no decision".into());
    }
    format!("{}; mode now {}", parts.join(", "), status.mode.name())
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<24} {:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}  dropped (or would be) by reason",
        "phase", "mode", "flood sent", "passed", "dropped", "legit sent", "legit dlvd", "tcp ok"
    );
    for r in rows {
        let reasons: Vec<String> = r.drops.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{:<24} {:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}  {}",
            r.name,
            r.mode.name(),
            r.flood_sent,
            r.passed,
            r.dropped,
            r.legit_sent,
            r.legit_delivered,
            format!("{}/{}", r.tcp_ok, r.tcp_tried),
            if reasons.is_empty() {
                "-".to_string()
            } else {
                reasons.join(", ")
            }
        );
    }
    println!();
    println!("detection engine, per phase:");
    for r in rows {
        println!("  {:<24} {:<8} {}", r.name, r.mode.name(), r.detection);
    }
}
