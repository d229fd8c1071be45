//! Real frames through a veth: the line rate on one CPU, and a random-source flood against
//! one source ((f) vs (a')).

use super::*;

/// Line rate on one CPU: frames from the lab generator (`levee_tests::livegen`: live frames,
/// or a packet socket where the kernel refuses them) sent out of the client's veth into the
/// program attached in native mode on the other end, the program on one CPU. The floor's rate
/// is the harness's own ceiling; a passed frame also pays for the host's stack.
pub(super) fn line_rate(args: &Args) -> Result<()> {
    use levee_tests::{
        daemon::DaemonLab,
        livegen::{Generator, Sources},
    };
    const FRAMES: u32 = 2_000_000;
    let mut generator = Generator::load()?;
    println!(
        "Line rate on one CPU: {FRAMES} frames a run through veth into native XDP, median of {} runs",
        args.runs
    );
    println!("generator: {}", generator.describe());
    let mut rate = |lab: &Lab, sources: Sources, frame: &[u8]| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..args.runs.max(1) {
            let took = generator.send(lab, sources, frame, FRAMES)?;
            v.push(f64::from(FRAMES) / took.as_secs_f64() / 1e6);
        }
        Ok(median(&mut v))
    };
    let legit = udp(LEGIT4, DST4, 40000, 443);
    let floor_mpps = {
        let lab = Lab::new();
        let mut floor = Dataplane::load_floor()?;
        let prog: &mut Xdp = floor.program_mut("floor").context("floor")?.try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        rate(&lab, Sources::Fixed, &legit)?
    };
    let mut d = DaemonLab::new();
    d.write_config(BENCH_CONFIG);
    d.start();
    let rows = [
        (
            "(a) legit UDP, tracked (passed to the stack)",
            Sources::Fixed,
            legit.clone(),
        ),
        (
            "(b) blocklisted source (dropped)",
            Sources::Fixed,
            udp(BLOCKED4, DST4, 40000, 443),
        ),
        (
            "(f) a new random source every frame (passed)",
            Sources::RandomV4,
            legit.clone(),
        ),
    ];
    let mut measured = Vec::new();
    for (name, sources, frame) in rows {
        measured.push((name, rate(&d.lab, sources, &frame)?));
    }
    d.stop();
    println!("{:<48} {:>8} {:>9}", "path", "Mpps", "x floor");
    println!("{:<48} {floor_mpps:>8.2} {:>9.2}", "floor: XDP_DROP", 1.0);
    for (name, mpps) in measured {
        println!("{name:<48} {mpps:>8.2} {:>9.2}", mpps / floor_mpps);
    }
    if generator.method == Method::PacketSocket {
        println!(
            "(the packet socket's sender, alone on the other CPU, is slower than every path: \
             these are its rates, and say only that the program kept up with it)"
        );
    }
    Ok(())
}

/// (f) vs (a'): real frames through a veth into the program a `levee run` attached (the
/// bench's config: familiar sources recorded, strict's trigger counting, neither firing at
/// this rate), program time from the kernel's BPF statistics.
pub(super) fn spoofed_flood(args: &Args) -> Result<()> {
    use filter_common::abi::Action;
    use levee_tests::daemon::{DaemonLab, packets};
    println!(
        "Random-source flood vs one source: {} real 64 B frames a run through veth into the \
         program levee run attached (native XDP),",
        args.frames
    );
    println!(
        "program run time from kernel BPF statistics, median of {} runs",
        args.runs
    );
    let mut d = DaemonLab::new();
    d.write_config(BENCH_CONFIG);
    d.start();
    let prog = attached_program(&d)?;
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("failed to enable BPF run-time statistics")?;

    let one = udp(CLIENT_V4[0], DST4, 40000, 443);
    let len = one.len();
    let single: Vec<u8> = one.repeat(args.frames);
    let mut spoofed = single.clone();
    let src = l3_offset(0) + 12;
    for i in 0..args.frames {
        // Distinct sources spread over the address space (an odd multiplier is a bijection).
        let a = (i as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(0x0a00_0001);
        spoofed[i * len + src..i * len + src + 4].copy_from_slice(&a.to_be_bytes());
    }

    let passed_before = packets(&d.stats(), Action::Pass, None);
    let measure = |frames: &[u8]| -> Result<(f64, u64)> {
        let before = prog.info()?;
        let sent = d.lab.client.run(|| send_frames("lv1", frames, len))?;
        std::thread::sleep(Duration::from_millis(100));
        let after = prog.info()?;
        let runs = after.run_count() - before.run_count();
        let ns = (after.run_time() - before.run_time()).as_nanos() as f64;
        if runs < sent / 2 {
            bail!("the program saw {runs} of {sent} frames sent");
        }
        Ok((ns / runs as f64, runs))
    };
    // Warm up: ARP-free raw frames need no neighbour; this warms caches and the tables.
    measure(&single)?;
    let mut one_source = Vec::new();
    let mut random = Vec::new();
    for _ in 0..args.runs.max(1) {
        one_source.push(measure(&single)?);
        random.push(measure(&spoofed)?);
    }
    let med = |v: &mut Vec<(f64, u64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (a_ns, a_runs) = med(&mut one_source);
    let (f_ns, f_runs) = med(&mut random);
    // Every frame must have passed: a refused one would time another path.
    let passed = packets(&d.stats(), Action::Pass, None) - passed_before;
    let sent = u64::from(args.runs.max(1) * 2 + 1) * args.frames as u64;
    if passed < sent {
        bail!("{passed} of {sent} frames passed: the bench's config refused some");
    }
    println!("{:<50} {:>9} {:>9}", "path", "ns/pkt", "x (a')");
    println!("{:<50} {a_ns:>9.1} {:>9.2}", "(a') one source", 1.0);
    println!(
        "{:<50} {f_ns:>9.1} {:>9.2}",
        "(f) every frame a new random source",
        f_ns / a_ns
    );
    println!("program runs per measurement: {a_runs} and {f_runs}; all {passed} frames passed");
    Ok(())
}
