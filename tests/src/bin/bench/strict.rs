//! Strict mode's paths (flows, services, cookies, flood signatures) and the spoofed floods
//! against the real daemon with strict off and on.

use super::*;

/// The paths strict mode adds, in a namespace of their own where a real listener and a
/// bound UDP socket serve 198.18.0.1 (the cookie helpers look sockets up in the caller's
/// namespace): a flow hit, UDP to no service, an ACK without flow or cookie, and a SYN
/// answered with a cookie. The last rewrites its frame, which BPF_PROG_TEST_RUN would feed
/// back to the next repetition: it is timed one run at a time from the kernel's own clock,
/// beside the floor timed the same way.
pub(super) fn strict_paths(
    args: &Args,
    floor_ns: f64,
    peer: Peer,
    report: &mut Report,
) -> Result<()> {
    use levee::dataplane::ServiceRule;
    use levee_tests::netns::Netns;
    let ns = Netns::new("bench-strict");
    ns.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    ns.run(|| -> Result<()> {
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "2")?;
        let _listener = std::net::TcpListener::bind((DST4, 443))?;
        let _udp = std::net::UdpSocket::bind((DST4, 5000))?;
        let mut dp = bench_dataplane(LoadOptions::default(), None)?;
        let mut cfg = dp.config();
        cfg.set_flag(flags::STRICT, true);
        cfg.set_flag(flags::TRACK_FLOWS, true);
        dp.set_config(cfg)?;
        let any: ipnet::IpNet = "0.0.0.0/0".parse()?;
        dp.set_services(&[
            ServiceRule {
                proto: 6,
                port: 443,
                dst: any,
            },
            ServiceRule {
                proto: 17,
                port: 5000,
                dst: any,
            },
        ])?;
        // The host answered LEGIT4 once: a UDP flow.
        dp.test_run_egress(&udp(DST4, LEGIT4, 5000, 40000))?;
        let prog = dp.program()?;
        let flow_hit = udp(LEGIT4, DST4, 40000, 5000);
        let no_service = udp(LEGIT4, DST4, 40000, 9999);
        let mut ack = tcp(LEGIT4, DST4, filter_common::parse::TCP_ACK);
        ack[36..38].copy_from_slice(&443u16.to_be_bytes());
        let mut syn = tcp(LEGIT4, DST4, TCP_SYN);
        syn[36..38].copy_from_slice(&443u16.to_be_bytes());
        let timed: [(&str, &Vec<u8>, u32); 3] = [
            ("(s1) strict: flow hit (UDP)", &flow_hit, XDP_PASS),
            ("(s2) strict: UDP to no service", &no_service, XDP_DROP),
            ("(s3) strict: ACK, no flow, no cookie", &ack, XDP_DROP),
        ];
        report.line("Strict mode's paths (the bench's own loader, strict engaged), same floor");
        report.line(&format!(
            "{:<50} {:>9} {:>9} {:>9}",
            "path", "ns/pkt", "x floor", PEER_COLUMN
        ));
        for (name, frame, expect) in timed {
            let mut v: Vec<f64> = (0..args.runs.max(1))
                .map(|_| time_test_run(prog, frame, args.repeat, expect))
                .collect::<Result<_>>()?;
            let ns = median(&mut v);
            let x = ns / floor_ns;
            report.line(&format!(
                "{name:<50} {ns:>9.1} {x:>9.2} {:>9.2}",
                peer.ratio(x, expect)
            ));
        }
        // One run at a time: the kernel's clock around a single run carries its own
        // overhead, so the floor is timed the same way for the ratio.
        let floor = Dataplane::load_floor()?;
        let floor_prog: &Xdp = floor.program("floor").context("floor")?.try_into()?;
        let singles = 20_000;
        let one_by_one = |p: &Xdp, frame: &[u8], expect: u32| -> Result<f64> {
            let mut v = Vec::with_capacity(singles);
            for _ in 0..singles {
                v.push(time_test_run(p, frame, 1, expect)?);
            }
            Ok(median(&mut v))
        };
        let floor1 = one_by_one(floor_prog, &syn, XDP_DROP)?;
        let cookie = one_by_one(prog, &syn, 3)?;
        // xdp-filter has no such path: no peer ratio.
        report.line(&format!(
            "{:<50} {:>9.1} {:>9.2} {:>9}   (one run at a time; floor so timed: {floor1:.1} ns)",
            "(s4) strict: SYN answered with a cookie",
            cookie,
            cookie / floor1,
            ""
        ));
        signature_paths(args, &mut dp, floor_ns, peer, report)
    })
}

/// A flood signature's drops (issue 22), strict engaged with the UDP budget: an unknown
/// source's datagram and a SYN, each matching a signature of its service (port and the 8
/// bytes the miner looks at), handed to the signature program by tail call and dropped.
pub(super) fn signature_paths(
    args: &Args,
    dp: &mut Dataplane,
    floor_ns: f64,
    peer: Peer,
    report: &mut Report,
) -> Result<()> {
    use filter_common::signature::{Facts, FloodSignature, field};
    let datagram = udp(OVER4, DST4, 40001, 5000);
    let mut syn = tcp(OVER4, DST4, TCP_SYN);
    syn[36..38].copy_from_slice(&443u16.to_be_bytes());
    let signature = |id: u32, proto: u8, port: u16, frame: &[u8]| FloodSignature {
        fields: field::DST_PORT | field::PAYLOAD,
        id,
        facts: Facts {
            dst_port: port,
            proto,
            payload: frame[42..50].try_into().expect("8 bytes"),
            ..Facts::default()
        },
        payload_mask: [0xff; 8],
    };
    dp.set_signatures(
        &[
            signature(1, 17, 5000, &datagram),
            signature(2, 6, 443, &syn),
        ],
        &[],
    )?;
    let mut cfg = dp.config();
    cfg.set_flag(flags::UDP_BUDGET, true);
    dp.set_config(cfg)?;
    let prog = dp.program()?;
    for (name, frame) in [
        ("(s5) strict: UDP matching a flood signature", &datagram),
        ("(s6) strict: SYN matching a flood signature", &syn),
    ] {
        let mut v: Vec<f64> = (0..args.runs.max(1))
            .map(|_| time_test_run(prog, frame, args.repeat, XDP_DROP))
            .collect::<Result<_>>()?;
        let ns = median(&mut v);
        let x = ns / floor_ns;
        report.line(&format!(
            "{name:<50} {ns:>9.1} {x:>9.2} {:>9.2}",
            peer.ratio(x, XDP_DROP)
        ));
    }
    Ok(())
}

/// Spoofed floods against the real daemon with strict off (the baseline) and always on: the
/// share the program drops, what the host's stack did with the rest (its own counters), and
/// the softirq time per flood frame (all CPUs; both namespaces share them).
pub(super) fn strict_floods(args: &Args) -> Result<()> {
    use filter_common::{frames::L4, parse::TCP_ACK};
    use levee_tests::{
        daemon::DaemonLab,
        traffic::{flood_until, kernel_stat, spoofed_frames},
    };
    use std::sync::atomic::{AtomicBool, Ordering};
    println!("Spoofed floods against levee run, strict off and on, 3 s each, one run");
    println!(
        "{:<8} {:<24} {:>10} {:>12} {:>26} {:>12}",
        "strict", "flood", "frames", "XDP dropped", "host stack", "softirq/fr"
    );
    for strict in ["off", "always"] {
        let mut d = DaemonLab::new();
        d.write_config(&format!(
            "mode = \"enforce\"\n[strict]\nmode = \"{strict}\""
        ));
        d.start();
        let _client_xdp = d.lab.pass_all_on_client_end();
        let _listener = d
            .lab
            .protected
            .run(|| std::net::TcpListener::bind((DST4, 8080)))?;
        std::thread::sleep(Duration::from_millis(1500));
        let shapes: [(&str, Vec<u8>, &str, &str, &str); 3] = [
            (
                "SYN to a served port",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Tcp {
                        sport: 1024 + (i % 60000) as u16,
                        dport: 8080,
                        flags: TCP_SYN,
                    },
                    20_000,
                ),
                // SYNs the listener took and dropped (here at the route lookup of its SYN-ACK:
                // the lab has no route back to the spoofed sources).
                "netstat",
                "TcpExt:",
                "ListenDrops",
            ),
            (
                "ACK, no connection",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Tcp {
                        sport: 1024 + (i % 60000) as u16,
                        dport: 8080,
                        flags: TCP_ACK,
                    },
                    20_000,
                ),
                "snmp",
                "Tcp:",
                "OutRsts",
            ),
            (
                "UDP to closed ports",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Udp {
                        sport: 40000,
                        dport: 20_000 + (i % 10_000) as u16,
                    },
                    20_000,
                ),
                "snmp",
                "Udp:",
                "NoPorts",
            ),
        ];
        for (name, frames, file, group, counter) in shapes {
            let stats = |d: &DaemonLab| -> u64 {
                d.stats()
                    .iter()
                    .filter(|c| c.action == "drop")
                    .map(|c| c.packets)
                    .sum()
            };
            let seen = |d: &DaemonLab| -> u64 { d.stats().iter().map(|c| c.packets).sum() };
            let (drop0, seen0) = (stats(&d), seen(&d));
            let k0 = kernel_stat(&d.lab.protected, file, group, counter);
            let soft0 = softirq_time()?;
            let stop = AtomicBool::new(false);
            let sent = std::thread::scope(|s| {
                let flood = s.spawn(|| flood_until(&d.lab, &frames, &stop));
                std::thread::sleep(Duration::from_secs(3));
                stop.store(true, Ordering::SeqCst);
                flood.join().expect("flood thread")
            });
            std::thread::sleep(Duration::from_millis(300));
            let soft = softirq_time()? - soft0;
            let k = kernel_stat(&d.lab.protected, file, group, counter) - k0;
            let (dropped, arrived) = (stats(&d) - drop0, seen(&d) - seen0);
            println!(
                "{strict:<8} {name:<24} {sent:>10} {:>11.1}% {:>26} {:>9.0} ns",
                dropped as f64 * 100.0 / arrived.max(1) as f64,
                format!("{counter} +{k}"),
                soft.as_nanos() as f64 / sent.max(1) as f64
            );
        }
        if !d.stop() {
            bail!("levee run did not stop cleanly: {}", d.log());
        }
    }
    let _ = args;
    Ok(())
}
