//! Live frames at NIC-like rates: the `trafficgen` XDP programs run with BPF_PROG_RUN in
//! live-frames mode send copies of one frame out of a veth (optionally from a new random IPv4
//! source each), and the veth's peer receives them as XDP frames, the way a NIC's driver
//! does. Millions a second on one CPU, where a raw socket manages about one.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
};
use levee::dataplane::TRAFFICGEN_OBJECT;

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

/// The generator programs, loaded.
pub struct Generator {
    ebpf: Ebpf,
    /// Frames per batch: the receiving veth's ring holds 256, so a smaller batch leaves room
    /// for other senders' packets (a NIC's ring is shared the same way, but drained faster).
    pub batch: u32,
}

impl Generator {
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
        Ok(Generator { ebpf, batch: BATCH })
    }

    /// Sends `count` copies of `frame` out of `ifname` (in the calling thread's network
    /// namespace), on the calling thread's CPU; the receiving end's XDP program runs there
    /// too (veth runs its peer's NAPI on the sending CPU). Returns how long it took.
    pub fn send(
        &mut self,
        sources: Sources,
        frame: &[u8],
        ifname: &str,
        count: u32,
    ) -> Result<Duration> {
        let (share, fixed) = match sources {
            Sources::Fixed => (0.0, std::net::Ipv4Addr::UNSPECIFIED),
            Sources::RandomV4 => (1.0, std::net::Ipv4Addr::UNSPECIFIED),
            Sources::RandomV4Share(share, fixed) => (share, fixed),
        };
        let name = if sources == Sources::Fixed {
            "trafficgen_fixed"
        } else {
            let mut settings: Array<&mut MapData, u32> = Array::try_from(
                self.ebpf
                    .map_mut("TRAFFICGEN")
                    .ok_or_else(|| anyhow!("map TRAFFICGEN missing"))?,
            )?;
            settings.set(0, (share.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u32, 0)?;
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
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET; affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}
