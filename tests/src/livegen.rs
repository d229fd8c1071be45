//! Floods at NIC-like rates on one CPU, with one of two methods, picked once per process:
//!
//! - live frames: the `trafficgen` XDP programs run with BPF_PROG_RUN in live-frames mode
//!   send copies of one frame out of a veth (optionally from a new random IPv4 source each),
//!   and the veth's peer receives them as XDP frames, the way a NIC's driver does. Millions a
//!   second on one CPU.
//! - a packet socket: where the kernel refuses live frames (some builds of Linux 6.18 answer
//!   every live-frames run with EPERM), an AF_PACKET socket sends the frames with sendmmsg in
//!   batches, the sources rewritten in user space, from the other CPU. The receiving veth
//!   polls in a NAPI thread of its own pinned to [`RECEIVER_CPU`], so the program still runs
//!   on that one CPU and pays for nothing of the sender's. On one CPU for both, the socket's
//!   per-frame cost (an skb, a softirq per frame) held the program to about 0.45 Mpps
//!   in the daemon's gate test; split, it sees about 1.2 Mpps, as live frames give.
//!
//! `LEVEE_GENERATOR=packet-socket` (or `live-frames`) forces a method instead of the probe,
//! so the fallback can be exercised where live frames work.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
};
use levee::dataplane::TRAFFICGEN_OBJECT;

use crate::netns::Lab;

/// The lab client's end of the veth, where the floods leave.
const CLIENT_END: &str = "lv1";

/// The CPU the receiving end's XDP program runs on during a flood, whatever the method.
pub const RECEIVER_CPU: usize = 0;

/// The environment variable that forces a method: `live-frames` or `packet-socket`.
pub const FORCE_VAR: &str = "LEVEE_GENERATOR";

/// How a [`Generator`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// BPF_PROG_RUN in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`).
    LiveFrames,
    /// An AF_PACKET socket and sendmmsg.
    PacketSocket,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::LiveFrames => "live-frames",
            Method::PacketSocket => "packet-socket",
        }
    }

    /// The method this process uses, and why: forced by [`FORCE_VAR`], or found by a probe
    /// run once (the first call), which tries one live frame.
    pub fn chosen() -> &'static (Method, String) {
        static CHOSEN: OnceLock<(Method, String)> = OnceLock::new();
        CHOSEN.get_or_init(|| {
            let chosen = match std::env::var(FORCE_VAR).as_deref() {
                Ok("live-frames") => (Method::LiveFrames, format!("forced by {FORCE_VAR}")),
                Ok("packet-socket") => (Method::PacketSocket, format!("forced by {FORCE_VAR}")),
                Ok(other) => {
                    panic!("{FORCE_VAR}={other:?}: expected \"live-frames\" or \"packet-socket\"")
                }
                Err(_) => match probe_live_frames() {
                    Ok(()) => (Method::LiveFrames, "the kernel takes live frames".into()),
                    Err(e) => (
                        Method::PacketSocket,
                        format!("the kernel refuses live frames ({e:#})"),
                    ),
                },
            };
            eprintln!("generator: {} ({})", chosen.0.name(), chosen.1);
            chosen
        })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `trafficgen_lab_end` once in live-frames mode on a frame it drops (addressed outside
/// the lab), with the loopback interface as ingress: nothing is sent.
fn probe_live_frames() -> Result<()> {
    let mut ebpf = Ebpf::load(TRAFFICGEN_OBJECT).context("failed to load trafficgen")?;
    let program: &mut Xdp = ebpf
        .program_mut("trafficgen_lab_end")
        .ok_or_else(|| anyhow!("program trafficgen_lab_end missing"))?
        .try_into()?;
    program.load()?;
    let frame = crate::udp("198.18.0.2", "192.0.2.1", 40000, 9);
    let md: [u32; 6] = [0, frame.len() as u32, 0, 1, 0, 0];
    let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
    program
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            ctx_in: Some(&ctx),
            repeat: 1,
            attrs: TestRunAttrs::new().xdp_live_frames(1),
            ..TestRunOptions::default()
        })
        .context("one live frame")?;
    Ok(())
}

/// Frames the kernel prepares and sends per batch, by default.
const BATCH: u32 = 256;

/// What the generator does to each copy of the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sources {
    /// Sends the frame as it is.
    Fixed,
    /// A new random IPv4 source address on every frame.
    RandomV4,
    /// A new random IPv4 source on this share of the frames (0 to 1), the given one on the
    /// rest: with the given one blocklisted, the filter meets the random-source flood at a
    /// known fraction of the generator's rate.
    RandomV4Share(f64, std::net::Ipv4Addr),
}

/// The generator programs, loaded, and the method this process sends with.
pub struct Generator {
    ebpf: Ebpf,
    /// Frames per batch of live frames: the receiving veth's ring holds 256, so a smaller
    /// batch leaves room for other senders' packets (a NIC's ring is shared the same way, but
    /// drained faster).
    pub batch: u32,
    pub method: Method,
    /// With the packet socket: send from the other CPU while the receiving end polls in a
    /// NAPI thread on [`RECEIVER_CPU`] (the default, the highest rate the program sees), or
    /// (false) from [`RECEIVER_CPU`] itself, where each frame is received in a softirq of
    /// the sending CPU as with live frames: slower, but that CPU's softirq time is then the
    /// receiving cost alone, which the bench's end-to-end figures measure.
    pub split_cpus: bool,
}

impl Generator {
    /// Loads the programs (the lab end needs them whatever the method) and picks the method
    /// ([`Method::chosen`]).
    pub fn load() -> Result<Generator> {
        let mut ebpf = Ebpf::load(TRAFFICGEN_OBJECT).context("failed to load trafficgen")?;
        for name in [
            "trafficgen_fixed",
            "trafficgen_random_v4",
            "trafficgen_lab_end",
        ] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} missing"))?
                .try_into()?;
            program.load()?;
        }
        let method = Method::chosen().0;
        Ok(Generator {
            ebpf,
            batch: BATCH,
            method,
            split_cpus: true,
        })
    }

    /// Sends `count` copies of `frame` out of the lab client's veth (`lv1`) to the protected
    /// end, whose XDP program runs on [`RECEIVER_CPU`]. With live frames the sender runs on
    /// that CPU too (veth runs its peer's NAPI on the sending CPU, and the kernel makes the
    /// frames); with the packet socket it runs on another CPU and the receiving end polls in
    /// a NAPI thread pinned to [`RECEIVER_CPU`]. Returns how long sending took.
    pub fn send(
        &mut self,
        lab: &Lab,
        sources: Sources,
        frame: &[u8],
        count: u32,
    ) -> Result<Duration> {
        match self.method {
            Method::LiveFrames => lab.client.run(|| {
                pin_to_cpu(RECEIVER_CPU)?;
                self.send_live(sources, frame, CLIENT_END, count)
            }),
            Method::PacketSocket => {
                let cpu = if self.split_cpus {
                    poll_on_cpu(lab, RECEIVER_CPU)?;
                    sender_cpu()
                } else {
                    RECEIVER_CPU
                };
                lab.client.run(|| {
                    pin_to_cpu(cpu)?;
                    send_from_socket(sources, frame, CLIENT_END, count)
                        .with_context(|| format!("packet socket on {CLIENT_END}"))
                })
            }
        }
    }

    /// The method and why it was chosen, for a report.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.method, Method::chosen().1)
    }

    fn send_live(
        &mut self,
        sources: Sources,
        frame: &[u8],
        ifname: &str,
        count: u32,
    ) -> Result<Duration> {
        let (share, fixed) = sources.share();
        let name = if sources == Sources::Fixed {
            "trafficgen_fixed"
        } else {
            let mut settings: Array<&mut MapData, u32> = Array::try_from(
                self.ebpf
                    .map_mut("TRAFFICGEN")
                    .ok_or_else(|| anyhow!("map TRAFFICGEN missing"))?,
            )?;
            settings.set(0, share, 0)?;
            settings.set(1, u32::from_ne_bytes(fixed.octets()), 0)?;
            "trafficgen_random_v4"
        };
        let program: &Xdp = self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("program {name} missing"))?
            .try_into()?;
        let ifname_c = std::ffi::CString::new(ifname)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(ifname_c.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {ifname}");
        }
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. XDP_TX in live mode sends out of the ingress interface.
        let md: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let started = Instant::now();
        program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat: count,
                attrs: TestRunAttrs::new().xdp_live_frames(self.batch),
                ..TestRunOptions::default()
            })
            .with_context(|| format!("live frames out of {ifname}"))?;
        Ok(started.elapsed())
    }
}

impl Sources {
    /// The share of random sources as a threshold on a random u32 (as the `trafficgen`
    /// program compares it), and the fixed source.
    fn share(self) -> (u32, std::net::Ipv4Addr) {
        let (share, fixed) = match self {
            Sources::Fixed => (0.0, std::net::Ipv4Addr::UNSPECIFIED),
            Sources::RandomV4 => (1.0, std::net::Ipv4Addr::UNSPECIFIED),
            Sources::RandomV4Share(share, fixed) => (share, fixed),
        };
        ((share.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u32, fixed)
    }
}

/// The packet socket's CPU: another one than the receiver's where there is one.
fn sender_cpu() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 1 {
        (RECEIVER_CPU + 1) % cpus
    } else {
        RECEIVER_CPU
    }
}

/// Makes the lab's protected end poll in a NAPI thread of its own (`threaded`, which must
/// be written through the namespace's own sysfs) and pins that thread to `cpu`. Idempotent;
/// the thread lives as long as the interface.
fn poll_on_cpu(lab: &Lab, cpu: usize) -> Result<()> {
    let iface = &lab.iface;
    let out = lab
        .protected
        .command("sh")
        .args(["-c", &format!("echo 1 > /sys/class/net/{iface}/threaded")])
        .output()
        .context("cannot run sh in the protected namespace")?;
    if !out.status.success() {
        bail!(
            "cannot make {iface} poll in a thread: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // The thread is named napi/<iface>-<napi id>; names are not per namespace, so every
    // such thread is pinned (the labs of earlier tests are gone with their interfaces).
    let prefix = format!("napi/{iface}-");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut pinned = 0;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(&prefix) {
                set_affinity(pid, cpu)
                    .with_context(|| format!("cannot pin {} to CPU {cpu}", comm.trim_end()))?;
                pinned += 1;
            }
        }
        if pinned > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{iface} polls in no thread ({prefix}*): has it an XDP program?");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Frames per sendmmsg of the packet-socket method.
const SOCKET_BATCH: usize = crate::sender::BATCH;

/// Offset of the IPv4 source address in an untagged Ethernet frame.
const IPV4_SRC: usize = 14 + 12;

/// The packet-socket method: `count` copies of `frame` out of `ifname`, a batch at a time,
/// each copy's IPv4 source rewritten as `trafficgen_random_v4` does (a random one on the
/// given share, the fixed one on the rest; the header checksum is left as it was).
fn send_from_socket(sources: Sources, frame: &[u8], ifname: &str, count: u32) -> Result<Duration> {
    let sender = crate::sender::RawSender::open(ifname)?;
    let len = frame.len();
    if sources != Sources::Fixed && len < IPV4_SRC + 4 {
        bail!("a frame of {len} bytes has no IPv4 source to rewrite");
    }
    let (share, fixed) = sources.share();
    let mut batch = frame.repeat(SOCKET_BATCH);
    // xorshift32, seeded from the clock: a new sequence of sources on every call.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x = (clock.subsec_nanos() ^ std::process::id()) | 1;
    let mut random = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let started = Instant::now();
    let mut left = count as usize;
    while left > 0 {
        let n = left.min(SOCKET_BATCH);
        if sources != Sources::Fixed {
            for i in 0..n {
                let source = if random() < share {
                    random().to_be_bytes()
                } else {
                    fixed.octets()
                };
                batch[i * len + IPV4_SRC..i * len + IPV4_SRC + 4].copy_from_slice(&source);
            }
        }
        sender.send(&batch[..n * len], len, None)?;
        left -= n;
    }
    Ok(started.elapsed())
}

impl Generator {
    /// Attaches `trafficgen_lab_end` to `ifname` (native, in the calling thread's namespace):
    /// frames to addresses outside the lab are dropped there, as the Internet would take them
    /// away, and XDP_TX frames from the peer arrive (veth needs an XDP program on the
    /// receiving end for them). Detached when the generator is dropped.
    pub fn attach_lab_end(&mut self, ifname: &str) -> Result<()> {
        use aya::programs::xdp::XdpMode;
        let program: &mut Xdp = self
            .ebpf
            .program_mut("trafficgen_lab_end")
            .ok_or_else(|| anyhow!("program trafficgen_lab_end missing"))?
            .try_into()?;
        program
            .attach(ifname, XdpMode::Driver)
            .with_context(|| format!("attach the lab end to {ifname}"))?;
        Ok(())
    }
}

/// Pins the calling thread to `cpu`, so a generator's frames and the receiver's program share
/// that CPU and "per CPU" figures mean one CPU.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    set_affinity(0, cpu).with_context(|| format!("cannot pin to CPU {cpu}"))
}

/// Pins thread `pid` (0: the calling one) to `cpu`.
fn set_affinity(pid: libc::pid_t, cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET; affects only that thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("{}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
