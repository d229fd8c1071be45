//! Real traffic helpers for the lab: paced UDP bursts from chosen sources, receive counting,
//! TCP connections from chosen sources.

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    thread::sleep,
    time::Duration,
};

use crate::netns::{Lab, Netns};

pub const DATAGRAMS: u64 = 200;

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// Sends `DATAGRAMS` datagrams from `src` to `dst`, paced so the veth ring never overflows.
pub fn send_udp(lab: &Lab, src: &str, dst: SocketAddr) {
    send_udp_from(&lab.client, src, dst)
}

/// [`send_udp`] from any client namespace.
pub fn send_udp_from(client: &Netns, src: &str, dst: SocketAddr) {
    client.run(|| {
        let sock = UdpSocket::bind(addr(src, 0)).expect("bind client UDP socket");
        for i in 0..DATAGRAMS {
            sock.send_to(format!("datagram {i}").as_bytes(), dst)
                .expect("send");
            if i % 20 == 19 {
                sleep(Duration::from_millis(2));
            }
        }
    });
}

/// Raises a socket's receive buffer past net.core.rmem_max (root only), so a burst of test
/// datagrams cannot overflow it.
pub fn force_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket fd and a pointer to a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
}

/// A TCP connection from a chosen source address.
pub fn tcp_connect(src: &str, dst: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(dst),
        socket2::Type::STREAM,
        None,
    )?;
    sock.bind(&addr(src, 0).into())?;
    sock.connect_timeout(&dst.into(), timeout)?;
    Ok(sock.into())
}

/// Counts datagrams waiting on `sock` by source address.
pub fn drain(sock: &UdpSocket) -> HashMap<IpAddr, u64> {
    let mut got = HashMap::new();
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((_, from)) => *got.entry(from.ip()).or_insert(0) += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// Sends single datagrams from `src` until one arrives on `sock` (up to 10 s), so neighbour
/// discovery (ARP, NDP) is done before a measured burst: an unresolved neighbour queues only a
/// few packets, and a busy machine can take more than one retransmission to resolve.
pub fn warm_up(client: &Netns, src: &str, sock: &UdpSocket) {
    let dst = sock.local_addr().expect("receiver address");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let from: IpAddr = src.parse().expect("source address");
    client.run(|| {
        let s = UdpSocket::bind(addr(src, 0)).expect("bind warm-up socket");
        loop {
            s.send_to(b"warm-up", dst).expect("send warm-up");
            sleep(Duration::from_millis(100));
            if drain(sock).contains_key(&from) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{src} cannot reach {dst}: neighbour discovery failed"
            );
        }
    });
}

/// A UDP socket bound in `ns` at `ip:port`, with a short read timeout and a receive buffer
/// large enough for a test burst.
pub fn udp_receiver(ns: &Netns, ip: &str, port: u16) -> UdpSocket {
    ns.run(|| {
        let u = UdpSocket::bind(addr(ip, port)).expect("bind receiver");
        u.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        force_receive_buffer(&u, 4 << 20);
        u
    })
}

/// `count` 64-byte UDP frames from `src` to the protected side's `port`, addressed to its
/// veth's MAC so the stack takes them, source ports varying. Returns the frames back to back.
pub fn udp_flood_frames(lab: &Lab, src: &str, port: u16, count: usize) -> Vec<u8> {
    // Ephemeral source ports, clear of the amplification-port signature.
    udp_frames(lab, src, |i| 40_000 + (i % 20_000) as u16, port, count)
}

/// [`udp_flood_frames`] of a reflection: every frame from source port `sport` (NTP's 123, say).
pub fn reflection_frames(lab: &Lab, src: &str, sport: u16, port: u16, count: usize) -> Vec<u8> {
    udp_frames(lab, src, |_| sport, port, count)
}

fn udp_frames(
    lab: &Lab,
    src: &str,
    sport: impl Fn(usize) -> u16,
    port: u16,
    count: usize,
) -> Vec<u8> {
    use filter_common::frames::{FrameSpec, L4};
    let server_mac = Lab::mac(&lab.protected, &lab.iface);
    let client_mac = Lab::mac(&lab.client, "lv1");
    let mut out = Vec::with_capacity(count * 64);
    for i in 0..count {
        let l4 = L4::Udp {
            sport: sport(i),
            dport: port,
        };
        let mut f = FrameSpec::new(
            src.parse().expect("source"),
            crate::netns::PROTECTED_V4.parse().expect("dst"),
            l4,
        )
        .payload(22)
        .build();
        f[0..6].copy_from_slice(&server_mac);
        f[6..12].copy_from_slice(&client_mac);
        out.extend_from_slice(&f);
    }
    out
}

/// Sends `frames` (64 bytes each) out of the client's veth again and again until `stop`.
pub fn flood_until(lab: &Lab, frames: &[u8], stop: &std::sync::atomic::AtomicBool) -> u64 {
    flood_at_until(lab, frames, None, stop)
}

/// [`flood_until`] at no more than `pps` frames a second if given, in small even batches.
/// In a [`Lab::spread`] lab a sender pinned to each CPU sends its share (from its own offset
/// in `frames`), so each CPU's queue carries part of the flood, as a NIC spreads one.
pub fn flood_at_until(
    lab: &Lab,
    frames: &[u8],
    pps: Option<f64>,
    stop: &std::sync::atomic::AtomicBool,
) -> u64 {
    let senders = lab.queues;
    lab.client.run(|| {
        if senders == 1 {
            return send_until(frames, 0, pps, stop);
        }
        // Threads spawned here are in the client's namespace too.
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..senders)
                .map(|cpu| {
                    s.spawn(move || {
                        crate::livegen::pin_to_cpu(cpu).expect("pin a sender");
                        let start = frames.len() / 64 * cpu / senders * 64;
                        send_until(frames, start, pps.map(|p| p / senders as f64), stop)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("sender")).sum()
        })
    })
}

/// Sends `frames` from offset `start` on, again and again, from this thread until `stop`.
fn send_until(
    frames: &[u8],
    start: usize,
    pps: Option<f64>,
    stop: &std::sync::atomic::AtomicBool,
) -> u64 {
    let sender = crate::sender::RawSender::open("lv1").expect("raw socket");
    // Paced rounds are cut short so a stop is seen within a fraction of a second.
    let round = match pps {
        Some(pps) => frames.len().min(((pps * 0.2) as usize).max(1) * 64),
        None => frames.len(),
    };
    let mut sent = 0;
    let mut off = start;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let end = (off + round).min(frames.len());
        sent += sender.send(&frames[off..end], 64, pps).expect("flood");
        off = if end == frames.len() { 0 } else { end };
    }
    sent
}

/// `count` 64-byte frames to the protected side from random (spoofed) sources in 10.0.0.0/8,
/// a different one for every frame, transport from `l4(i)`.
pub fn spoofed_frames(
    lab: &Lab,
    l4: impl Fn(usize) -> filter_common::frames::L4,
    count: usize,
) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let sources: Vec<std::net::Ipv4Addr> = (0..count)
        .map(|_| {
            // xorshift: a different source for every frame.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            std::net::Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff))
        })
        .collect();
    frames_from(lab, |i| sources[i], l4, count)
}

/// `count` 64-byte frames to the protected side, frame `i` from `src(i)` (spoofed: the sender
/// is not that address's stack) with transport `l4(i)`, addressed to the protected veth's MAC
/// so the stack takes them, with right checksums.
pub fn frames_from(
    lab: &Lab,
    src: impl Fn(usize) -> std::net::Ipv4Addr,
    l4: impl Fn(usize) -> filter_common::frames::L4,
    count: usize,
) -> Vec<u8> {
    use filter_common::frames::FrameSpec;
    let server_mac = Lab::mac(&lab.protected, &lab.iface);
    let client_mac = Lab::mac(&lab.client, "lv1");
    let dst = crate::netns::PROTECTED_V4
        .parse()
        .expect("protected address");
    let mut out = Vec::with_capacity(count * 64);
    for i in 0..count {
        let mut f = FrameSpec::new(src(i).into(), dst, l4(i));
        f.payload = 64 - f.build().len();
        let mut f = f.build();
        f[0..6].copy_from_slice(&server_mac);
        f[6..12].copy_from_slice(&client_mac);
        fix_l4_checksum(&mut f);
        out.extend_from_slice(&f);
    }
    out
}

/// Writes a right TCP checksum into an IPv4 frame (UDP keeps zero: "no checksum"), so the
/// host's stack takes a spoofed segment as a real one would be taken.
fn fix_l4_checksum(f: &mut [u8]) {
    if f[23] != filter_common::parse::IPPROTO_TCP {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let (l4, end) = (14 + ihl, 14 + total);
    f[l4 + 16] = 0;
    f[l4 + 17] = 0;
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&f[26..34]);
    add(&[0, 6]);
    add(&((end - l4) as u16).to_be_bytes());
    add(&f[l4..end]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// One counter of a namespace's TCP/UDP statistics (`/proc/net/netstat` or `snmp`, `group`
/// such as "Tcp:" or "TcpExt:").
pub fn kernel_stat(ns: &Netns, file: &str, group: &str, name: &str) -> u64 {
    let text = ns.run(|| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).expect("net stats")
    });
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(group)).collect();
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let i = names.iter().position(|n| *n == name).expect(name);
    values[i].parse().expect("a number")
}
