//! Floods at the lab generator's full rate (issue 20). The generator sends live frames where
//! the kernel takes them and falls back to a packet socket where it refuses them (some builds
//! of Linux 6.18 do: `levee_tests::livegen`); every flood test asserts the same with either.
//! So that the fallback is exercised on every machine, the last test here runs the gate test
//! and the strict flood below again in a child process with the packet socket forced.

use std::{process::Command, thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    livegen::{FORCE_VAR, Generator, Sources},
    netns::{CLIENT_V4, PROTECTED_V4},
    udp,
};

/// Frames of the flood: about two seconds of either generator.
const FRAMES: u32 = 2_000_000;

/// Strict always, nothing listening on UDP 7777: a flood from a new random source every frame
/// (the generator's full rate, about 1 Mpps on one CPU) is dropped as `no_service`, and
/// nothing of it is passed to the host.
#[test]
fn a_random_source_udp_flood_to_a_closed_port_dies_at_line_rate() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    // Strict engages and the services are discovered within a tick.
    sleep(Duration::from_millis(2500));
    assert!(d.status().strict.engaged, "{:?}", d.status().strict);
    let mut generator = Generator::load().unwrap_or_else(|e| panic!("{e:#}"));
    let method = generator.method;
    let frame = udp(CLIENT_V4[1], PROTECTED_V4, 40000, 7777);
    let before = d.stats();
    let took = generator
        .send(&d.lab, Sources::RandomV4, &frame, FRAMES)
        .unwrap_or_else(|e| panic!("{method}: {e:#}"));
    // The receiving end's ring (256 frames) drains within microseconds.
    sleep(Duration::from_millis(100));
    let after = d.stats();
    let delta = |action, reason| packets(&after, action, reason) - packets(&before, action, reason);
    let (no_service, passed) = (
        delta(Action::Drop, Some(Reason::NoService)),
        delta(Action::Pass, None),
    );
    let seen: u64 = after.iter().map(|c| c.packets).sum::<u64>()
        - before.iter().map(|c| c.packets).sum::<u64>();
    println!(
        "generator: {method}; {FRAMES} frames in {:.2} s ({:.2} Mpps), {seen} reached the \
         program, {no_service} dropped as no_service, {passed} passed",
        took.as_secs_f64(),
        f64::from(FRAMES) / took.as_secs_f64() / 1e6
    );
    let frames = u64::from(FRAMES);
    assert!(
        seen * 100 >= frames * 99,
        "{method}: {seen} of {frames} frames reached the program"
    );
    assert!(
        no_service * 100 >= frames * 99,
        "{method}: {no_service} of {frames} dropped as no_service"
    );
    assert!(
        passed * 100 < frames,
        "{method}: {passed} of {frames} passed"
    );
    assert!(d.stop());
}

/// The gate test and the strict flood above, run again with the packet-socket generator
/// forced through [`FORCE_VAR`], even where live frames work: each passes and says which
/// generator it ran with.
#[test]
fn the_packet_socket_generator_runs_the_floods() {
    let tests = [
        "gate::the_gate_narrows_during_a_random_source_flood_and_widens_after",
        "line_rate::a_random_source_udp_flood_to_a_closed_port_dies_at_line_rate",
    ];
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "--test-threads=1", "--nocapture"])
        .args(tests)
        .env(FORCE_VAR, "packet-socket")
        .output()
        .expect("run the test binary again");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("test result: ok. {} passed", tests.len())),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("generator: packet-socket (forced by {FORCE_VAR})")),
        "{stderr}"
    );
    assert_eq!(
        stdout.matches("generator: packet-socket").count(),
        tests.len(),
        "each test names the generator it ran with: {stdout}"
    );
}
