//! The peers in the same run: xdp-filter per packet and end to end, and an nftables
//! netdev-ingress set.

use super::*;

/// xdp-filter (xdp-tools) on the lab's interface, its state pinned in a bpffs of its own so
/// nothing is left in the host's /sys/fs/bpf; unloaded when dropped.
pub(super) struct XdpFilter<'a> {
    lab: &'a Lab,
    bpffs: std::path::PathBuf,
}

impl<'a> XdpFilter<'a> {
    pub(super) fn load(lab: &'a Lab) -> Result<XdpFilter<'a>> {
        let bpffs = std::path::PathBuf::from(format!("/run/levee-bench-{}", std::process::id()));
        std::fs::create_dir_all(&bpffs)?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&bpffs)
            .status()?;
        if !mounted.success() {
            bail!("cannot mount a bpffs at {}", bpffs.display());
        }
        let filter = XdpFilter { lab, bpffs };
        filter.run(&["load", &lab.iface, "--mode", "native"])?;
        Ok(filter)
    }

    pub(super) fn run(&self, args: &[&str]) -> Result<()> {
        let out = self
            .lab
            .protected
            .command("xdp-filter")
            .args(args)
            .env("LIBXDP_BPFFS", &self.bpffs)
            .output()
            .context("cannot run xdp-filter (cargo xtask setup installs xdp-tools)")?;
        if !out.status.success() {
            bail!(
                "xdp-filter {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for XdpFilter<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["unload", &self.lab.iface]);
        let _ = std::process::Command::new("umount")
            .arg(&self.bpffs)
            .status();
        let _ = std::fs::remove_dir(&self.bpffs);
    }
}

/// Peers in the same run. xdp-filter per packet through TEST_RUN, as the paths; then end to
/// end, the receiving CPU's softirq time per frame of a live-frame flood from one source
/// that each filter drops: XDP_DROP alone, levee run, xdp-filter, and an nftables
/// netdev-ingress set (the frames reach it through an XDP program that passes them: a veth
/// takes live frames only when its peer has one).
pub(super) fn peers(args: &Args, report: &mut Report) -> Result<()> {
    use levee_tests::{
        daemon::DaemonLab,
        livegen::{Generator, Sources},
    };
    let legit = udp(LEGIT4, DST4, 40000, 443);
    let blocked = udp(BLOCKED4, DST4, 40000, 443);
    let floor = Dataplane::load_floor()?;
    let floor_prog: &Xdp = floor.program("floor").context("floor")?.try_into()?;
    let mut rows: Vec<(String, f64)> = Vec::new();
    {
        let lab = Lab::new();
        let filter = XdpFilter::load(&lab)?;
        filter.run(&["ip", BLOCKED4, "--mode", "src"])?;
        let prog = attached_xdp(&lab, "xdpfilt")?;
        let timed = |rules: &str, rows: &mut Vec<(String, f64)>| -> Result<()> {
            let mut samples = vec![Vec::new(); 3];
            for round in 0..=args.runs.max(1) {
                let ns = [
                    time_test_run(floor_prog, &legit, args.repeat, XDP_DROP)?,
                    time_test_run(&prog, &legit, args.repeat, XDP_PASS)?,
                    time_test_run(&prog, &blocked, args.repeat, XDP_DROP)?,
                ];
                if round > 0 {
                    samples.iter_mut().zip(ns).for_each(|(v, ns)| v.push(ns));
                }
            }
            let m: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
            rows.push((format!("xdp-filter, {rules}: (a) legit UDP"), m[1] / m[0]));
            rows.push((
                format!("xdp-filter, {rules}: (b) listed source"),
                m[2] / m[0],
            ));
            Ok(())
        };
        timed("1 source rule", &mut rows)?;
        for i in 0..999u32 {
            filter.run(&[
                "ip",
                &format!("10.{}.{}.{}", i >> 8, i & 255, 7),
                "--mode",
                "src",
            ])?;
        }
        timed("1,000 source rules", &mut rows)?;
    }
    report.line(
        "Peers, through BPF_PROG_TEST_RUN as the paths, each ratio to a floor timed in the \
         same rounds",
    );
    report.line(&format!("{:<48} {:>9}", "peer and path", "x floor"));
    for (name, ratio) in &rows {
        report.line(&format!("{name:<48} {ratio:>9.2}"));
    }

    // End to end: time of the receiving CPU per frame, every filter dropping the same flood
    // from one listed source.
    const FRAMES: u32 = 10_000_000;
    let mut generator = Generator::load()?;
    // The packet socket sends from the receiver's CPU here: each frame is then received in a
    // softirq of that CPU, as with live frames, and its softirq time is the receiving cost.
    generator.split_cpus = false;
    let mut softirq_per_frame = |lab: &Lab| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..args.runs.max(1) {
            let before = softirq_of(&format!("cpu{RECEIVER_CPU}"))?;
            generator.send(lab, Sources::Fixed, &blocked, FRAMES)?;
            let after = softirq_of(&format!("cpu{RECEIVER_CPU}"))?;
            v.push((after - before).as_nanos() as f64 / f64::from(FRAMES));
        }
        Ok(median(&mut v))
    };
    let mut e2e: Vec<(&str, f64)> = Vec::new();
    let nft_dropped: (u64, u64);
    {
        let lab = Lab::new();
        let mut floor = Dataplane::load_floor()?;
        let prog: &mut Xdp = floor.program_mut("floor").context("floor")?.try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        e2e.push(("XDP_DROP and nothing else", softirq_per_frame(&lab)?));
    }
    {
        let mut d = DaemonLab::new();
        d.write_config(BENCH_CONFIG);
        d.start();
        e2e.push(("levee run, blocklisted source", softirq_per_frame(&d.lab)?));
        d.stop();
    }
    {
        let lab = Lab::new();
        let filter = XdpFilter::load(&lab)?;
        filter.run(&["ip", BLOCKED4, "--mode", "src"])?;
        e2e.push(("xdp-filter, source rule", softirq_per_frame(&lab)?));
    }
    {
        let lab = Lab::new();
        let mut pass = Dataplane::load_floor()?;
        let prog: &mut Xdp = pass
            .program_mut("floor_pass")
            .context("floor_pass")?
            .try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        let rules = format!(
            "table netdev levee_bench {{\n\
               set blocked {{ type ipv4_addr; elements = {{ {BLOCKED4} }}; }}\n\
               chain ingress {{\n\
                 type filter hook ingress device {} priority -500;\n\
                 ip saddr @blocked counter drop\n\
               }}\n\
             }}\n",
            lab.iface
        );
        let out = lab
            .protected
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().expect("stdin").write_all(rules.as_bytes())?;
                c.wait_with_output()
            })
            .context("cannot run nft (cargo xtask setup installs nftables)")?;
        if !out.status.success() {
            bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        e2e.push(("nftables netdev ingress set", softirq_per_frame(&lab)?));
        // The frames reached the set and were dropped there.
        let listed = lab
            .protected
            .command("nft")
            .args(["list", "chain", "netdev", "levee_bench", "ingress"])
            .output()?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let dropped: u64 = listed
            .split("counter packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no counter in the nftables chain: {listed}"))?;
        let sent = u64::from(FRAMES) * u64::from(args.runs.max(1));
        if dropped * 2 < sent {
            bail!("nftables dropped {dropped} of the {sent} frames sent: is the rule in place?");
        }
        nft_dropped = (dropped, sent);
    }
    report.line("");
    report.line(&format!(
        "End to end: {FRAMES} frames a run from one listed source through veth, dropped; \
         softirq time of the receiving CPU per frame ({} on that CPU), median of {} runs",
        generator.method, args.runs
    ));
    report.line(&format!(
        "{:<50} {:>9} {:>12}",
        "dropped by", "ns/frame", "+ns on XDP_DROP"
    ));
    let base = e2e[0].1;
    for (name, ns) in &e2e {
        report.line(&format!("{name:<50} {ns:>9.0} {:>+12.0}", ns - base));
    }
    let (dropped, sent) = nft_dropped;
    report.line(&format!(
        "(nftables: {dropped} of {sent} frames reached the set and were dropped there; \
         the rest were lost before it, at the veth, and cost less)"
    ));
    Ok(())
}
