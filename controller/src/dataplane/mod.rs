//! The data-plane handle: owns the loaded XDP program and its maps, and offers typed access to
//! them. Everything aya-specific stays in this module, so the rest of the controller works on
//! plain Rust types.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, ProgramArray, RingBuf},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp, xdp::XdpLinkId},
    util::nr_cpus,
};
use filter_common::{
    abi::{
        AMP_PORT_WORDS, CLOCK_PROGRAM, COOKIE_PROGRAM, Config, DEFAULT_EVENT_BYTES,
        DEFAULT_MAX_SOURCES, EGRESS_PROGRAM, FRAGMENT_PROGRAM, HELD_PROGRAM, Mode,
        NO_COOKIE_PROGRAM, PROGRAM, SIGNATURE_PROGRAM, flags, lost, map,
    },
    config::{DEFAULT_AMP_PORTS, nominal_jiffy_ns},
};

mod attach;
mod batch;
mod capture;
mod counters;
mod explain;
pub mod gate;
mod lists;
mod log;
mod received;
mod signatures;
mod strict;
mod summary;

pub use attach::{AttachMode, Attached};
pub use capture::CaptureSkipped;

pub use counters::Counters;
pub use explain::{ListLookup, Probe, abi_address};
pub use lists::{Edit, Expiry, List, ListFds, expiry_after};
pub use strict::{ServiceRule, TriggerHeld};

/// The compiled XDP program, built by build.rs.
pub static LEVEE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/levee"));
/// A program that drops every packet and does nothing else: the benchmark floor.
pub static FLOOR_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/floor"));
/// A live-frames traffic generator for benchmarks and tests; `levee run` never loads it.
pub static TRAFFICGEN_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen"));

/// Sizes fixed when the program is loaded, and where its state is pinned.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Entries in the per-source LRU table.
    pub max_sources: u32,
    /// Size of the event ring buffer in bytes (a power of two, at least one page).
    pub event_bytes: u32,
    /// A bpffs directory for the maps and the link. Maps already pinned there are reused, so
    /// a restarted daemon keeps its lists, sources and counters.
    pub pin_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_sources: DEFAULT_MAX_SOURCES,
            event_bytes: DEFAULT_EVENT_BYTES,
            pin_dir: None,
        }
    }
}

/// The loaded program and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    config: Config,
    /// The configuration found in reused (pinned) maps, if an earlier run left one.
    previous: Option<Config>,
    links: Vec<(String, XdpLinkId, Attached)>,
    /// The list summary's words as the map holds them.
    summary: summary::Words,
    /// The program's diagnostics (its AYA_LOGS ring), forwarded to `tracing`.
    log: log::ProgramLog,
}

impl Dataplane {
    /// Loads the program into the kernel (the verifier runs here) with `config` in place and the
    /// default amplification ports set.
    pub fn load(options: &LoadOptions, config: Config) -> Result<Dataplane> {
        Self::load_with(options, config, |_| Ok(()))
    }

    /// [`Dataplane::load`], running `while_verifying` on a thread of its own with the list
    /// maps' descriptors once the maps exist, while the kernel verifies the program (which
    /// takes about a second): a long list is written meanwhile instead of after.
    pub fn load_with(
        options: &LoadOptions,
        config: Config,
        while_verifying: impl FnOnce(&ListFds) -> Result<()> + Send,
    ) -> Result<Dataplane> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(map::SOURCES, options.max_sources)
            .map_max_entries(map::EVENTS, options.event_bytes);
        if let Some(dir) = &options.pin_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} (is bpffs mounted?)", dir.display()))?;
            for name in map::ALL {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader
            .load(LEVEE_OBJECT)
            .context("failed to load the XDP object (are you root, is BPF enabled?)")?;
        // Before the programs: they refer to the log ring by a descriptor the logger holds.
        let log = log::ProgramLog::take(&mut ebpf)?;
        let fds = ListFds::of(&ebpf)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
            .try_into()?;
        let (verified, written) = std::thread::scope(|s| {
            let writer = s.spawn(|| while_verifying(&fds));
            let verified = program.load();
            (verified, writer.join())
        });
        verified.context("the kernel refused the XDP program (verifier)")?;
        written.map_err(|_| anyhow!("writing the lists panicked"))??;
        let clock: &mut Xdp = ebpf
            .program_mut(CLOCK_PROGRAM)
            .ok_or_else(|| anyhow!("program {CLOCK_PROGRAM} missing from the object"))?
            .try_into()?;
        clock
            .load()
            .context("the kernel refused the clock program")?;
        load_strict_programs(&mut ebpf)?;
        let mut dp = Dataplane {
            ebpf,
            config,
            previous: None,
            links: Vec::new(),
            summary: summary::empty(),
            log,
        };
        let found: Config =
            Array::<&MapData, Config>::try_from(dp.map(map::CONFIG)?)?.get(&0, 0)?;
        // A calibrated clock means a loader wrote this entry: the maps were reused.
        if found.clock_ns_per_jiffy != 0 {
            dp.previous = Some(found);
        }
        dp.config.sketch_seed = random_seed();
        dp.calibrate_clock()?;
        dp.set_amp_ports(&DEFAULT_AMP_PORTS)?;
        // Reused (pinned) lists may already hold entries.
        dp.refresh_list_flags()?;
        // The summary map may be as old as the lists, or newer (it came later): make it
        // exact. Lists written while verifying marked their bits in `fds`.
        dp.summary = dp.list_summary()?;
        if dp.previous.is_some() {
            dp.rebuild_list_summary(None)?;
        } else {
            dp.mark_words(&fds.marked())?;
        }
        Ok(dp)
    }

    /// Loads the floor programs for benchmarks: `floor` drops everything, `floor_pass`
    /// passes everything, `floor_call` and `floor_helper` drop after one call.
    pub fn load_floor() -> Result<Ebpf> {
        let mut ebpf = Ebpf::load(FLOOR_OBJECT).context("failed to load the floor object")?;
        for name in ["floor", "floor_pass", "floor_call", "floor_helper"] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} missing"))?
                .try_into()?;
            program.load()?;
        }
        Ok(ebpf)
    }

    /// Measures the jiffy length and its offset to CLOCK_MONOTONIC_COARSE, so the program can
    /// read time from jiffies (see `Config::clock_ns_per_jiffy`).
    fn calibrate_clock(&mut self) -> Result<()> {
        let (j0, t0) = self.clock_sample()?;
        std::thread::sleep(Duration::from_millis(100));
        let (j1, t1) = self.clock_sample()?;
        if j1 <= j0 || t1 <= t0 {
            bail!(
                "clock calibration failed: jiffies {j0} -> {j1}, coarse ns {t0} -> {t1} in 100 ms"
            );
        }
        let ns_per_jiffy = nominal_jiffy_ns((t1 - t0) / (j1 - j0));
        self.config.clock_ns_per_jiffy = ns_per_jiffy;
        self.config.clock_offset_ns = t1.wrapping_sub(j1.wrapping_mul(ns_per_jiffy));
        Ok(())
    }

    /// One [jiffies, coarse ns] pair read in the kernel at the same instant.
    fn clock_sample(&self) -> Result<(u64, u64)> {
        let program: &Xdp = self
            .ebpf
            .program(CLOCK_PROGRAM)
            .ok_or_else(|| anyhow!("program {CLOCK_PROGRAM} missing"))?
            .try_into()?;
        program.test_run(TestRunOptions {
            data_in: Some(&[0u8; 64]),
            ..TestRunOptions::default()
        })?;
        let clock: Array<&MapData, u64> = Array::try_from(self.map(map::CLOCK)?)?;
        Ok((clock.get(&0, 0)?, clock.get(&1, 0)?))
    }

    /// Names the interface in the program's diagnostics (`iface` in the log).
    pub fn name_log(&self, iface: &str) {
        self.log.name(iface);
    }

    /// Forwards the program's diagnostics waiting in its log ring to `tracing`; never blocks.
    /// The daemon calls it with every drain of the event rings.
    pub fn flush_log(&mut self) {
        self.log.flush();
    }

    /// The configuration an earlier run left in reused maps (a restart), if any.
    pub fn previous_config(&self) -> Option<Config> {
        self.previous
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// Replaces the configuration. The map-content flags (HAS_*) are kept, they follow the lists.
    pub fn set_config(&mut self, mut config: Config) -> Result<()> {
        config.flags = (config.flags & flags::SETTINGS) | (self.config.flags & !flags::SETTINGS);
        if config.sketch_seed == 0 {
            config.sketch_seed = self.config.sketch_seed;
        }
        // The clock calibration belongs to the loader, not to the caller's settings.
        config.clock_ns_per_jiffy = self.config.clock_ns_per_jiffy;
        config.clock_offset_ns = self.config.clock_offset_ns;
        self.config = config;
        self.write_config()
    }

    /// Switches the mode; the program reads it on the next packet.
    pub fn set_mode(&mut self, mode: Mode) -> Result<()> {
        self.config.mode = mode as u32;
        self.write_config()
    }

    pub(crate) fn write_config(&mut self) -> Result<()> {
        let config = self.config;
        let mut array: Array<&mut MapData, Config> = Array::try_from(self.map_mut(map::CONFIG)?)?;
        array.set(0, config, 0).context("failed to write CONFIG")
    }

    /// Sets the UDP source ports of the amplification signature.
    pub fn set_amp_ports(&mut self, ports: &[u16]) -> Result<()> {
        let mut words = vec![0u64; AMP_PORT_WORDS as usize];
        for p in ports {
            words[usize::from(*p >> 6)] |= 1 << (p & 63);
        }
        let mut array: Array<&mut MapData, u64> = Array::try_from(self.map_mut(map::AMP_PORTS)?)?;
        for (i, w) in words.iter().enumerate() {
            array.set(i as u32, *w, 0)?;
        }
        Ok(())
    }

    /// The ring of sampled headers; it can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring(map::EVENTS)
    }

    /// The ring of offences; it can be taken once.
    pub fn take_offences(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring(map::OFFENCES)
    }

    fn take_ring(&mut self, name: &str) -> Result<RingBuf<MapData>> {
        let m = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("{name} already taken"))?;
        Ok(RingBuf::try_from(m)?)
    }

    /// Records lost to a full ring so far, all CPUs: (offences, samples).
    pub fn events_lost(&self) -> Result<(u64, u64)> {
        let array: aya::maps::PerCpuArray<&MapData, u64> =
            aya::maps::PerCpuArray::try_from(self.map(map::EVENTS_LOST)?)?;
        let sum = |slot: u32| -> Result<u64> { Ok(array.get(&slot, 0)?.iter().sum()) };
        Ok((sum(lost::OFFENCE)?, sum(lost::SAMPLE)?))
    }

    /// Runs the program on one frame through BPF_PROG_TEST_RUN, `repeat` times; returns the
    /// XDP action and the mean time per run.
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<(u32, Duration)> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing"))?
            .try_into()?;
        let r = program.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok((r.return_value, r.duration))
    }

    /// The program, for callers that drive it directly (benchmarks).
    pub fn program(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing"))?
            .try_into()?)
    }

    /// Instructions the verifier walked for each loaded program of the object, by name: how
    /// close each is to the kernel's limit of a million.
    pub fn verified_instructions(&self) -> Result<Vec<(String, u32)>> {
        let mut out = Vec::new();
        for (name, program) in self.ebpf.programs() {
            let Ok(info) = program.info() else {
                continue; // not loaded (the egress program before an attach)
            };
            if let Some(n) = info.verified_instruction_count() {
                out.push((name.to_string(), n));
            }
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn program_mut(&mut self) -> Result<&mut Xdp> {
        Ok(self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing"))?
            .try_into()?)
    }

    pub(crate) fn map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing from the object"))
    }

    pub(crate) fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from the object"))
    }
}

/// Loads the SYN-cookie program into the main program's tail-call slot 0 (and into slot 1
/// the program a SYN it cannot answer goes on to), and the egress program that records flows
/// (attached beside the XDP program, see `attach`).
fn load_strict_programs(ebpf: &mut Ebpf) -> Result<()> {
    load_tail_call(ebpf, COOKIE_PROGRAM, 0, "the SYN-cookie program")?;
    load_tail_call(
        ebpf,
        NO_COOKIE_PROGRAM,
        1,
        "the program for SYNs without a cookie",
    )?;
    load_tail_call(ebpf, FRAGMENT_PROGRAM, 2, "strict's program for fragments")?;
    load_tail_call(
        ebpf,
        HELD_PROGRAM,
        3,
        "the program while strict's trigger holds",
    )?;
    load_tail_call(ebpf, SIGNATURE_PROGRAM, 4, "the flood signatures' program")?;
    let egress: &mut SchedClassifier = ebpf
        .program_mut(EGRESS_PROGRAM)
        .ok_or_else(|| anyhow!("program {EGRESS_PROGRAM} missing from the object"))?
        .try_into()?;
    egress
        .load()
        .context("the kernel refused the egress flow program (verifier)")?;
    Ok(())
}

/// Loads the XDP program `name` and installs it in TAIL_CALLS at `slot`.
fn load_tail_call(ebpf: &mut Ebpf, name: &str, slot: u32, what: &str) -> Result<()> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    program
        .load()
        .with_context(|| format!("the kernel refused {what} (verifier)"))?;
    let fd = program.fd()?.try_clone()?;
    let mut slots: ProgramArray<&mut MapData> = ProgramArray::try_from(
        ebpf.map_mut(map::TAIL_CALLS)
            .ok_or_else(|| anyhow!("map {} missing", map::TAIL_CALLS))?,
    )?;
    slots
        .set(slot, &fd, 0)
        .with_context(|| format!("failed to install {what}"))
}

/// A lookup or delete of a key that is not in the map (aya reports ENOENT either way).
pub(crate) fn is_not_found(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Number of possible CPUs: per-CPU shares of aggregate ceilings are divided by it.
pub fn cpu_count() -> Result<u32> {
    nr_cpus()
        .map(|n| n as u32)
        .map_err(|(what, e)| anyhow!("failed to read {what}: {e}"))
}

/// CLOCK_MONOTONIC_COARSE in ns: the clock the program reads (bpf_ktime_get_coarse_ns).
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: valid buffer of the given length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        monotonic_coarse_ns() ^ 0x9e37_79b9_7f4a_7c15
    }
}
