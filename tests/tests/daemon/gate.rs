//! The sketch gate in the daemon's loop: narrowed while one CPU sees a random-source flood at
//! a rate its configured gate cannot hold, widened back once the flood is over.

use std::{thread::sleep, time::Duration};

use levee_tests::{
    daemon::DaemonLab,
    livegen::{Generator, Sources},
    netns::{CLIENT_V4, PROTECTED_V4},
    udp,
};

#[test]
fn the_gate_narrows_during_a_random_source_flood_and_widens_after() {
    let mut d = DaemonLab::new();
    // A 64 ms window: the generator's flood on one CPU (about 1 Mpps, live frames or the
    // packet socket) is more than this gate holds, as 10 Mpps is for the default one.
    d.write_config("[sources]\nsketch_window = \"64ms\"\n[strict]\nmode = \"off\"");
    d.start();
    let calm = d.status().sources;
    assert!(!calm.narrowed, "{calm:?}");
    assert!((calm.gate_window_ms - 67.108864).abs() < 1e-6, "{calm:?}");

    let mut generator = Generator::load().unwrap_or_else(|e| panic!("{e:#}"));
    let method = generator.method;
    println!("generator: {method}");
    let frame = udp(CLIENT_V4[1], PROTECTED_V4, 40000, 9000);
    let flooding = std::sync::atomic::AtomicBool::new(true);
    let narrowed = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                generator
                    .send(&d.lab, Sources::RandomV4, &frame, 500_000)
                    .unwrap_or_else(|e| panic!("{method}: {e:#}"));
            }
        });
        let mut seen = None;
        for _ in 0..50 {
            sleep(Duration::from_millis(200));
            let s = d.status().sources;
            if s.narrowed {
                seen = Some(s);
                break;
            }
        }
        flooding.store(false, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        seen
    });
    let narrowed = narrowed.unwrap_or_else(|| {
        panic!(
            "the gate was not narrowed during the flood ({method}): {:?}\n{}",
            d.status().sources,
            d.log()
        )
    });
    assert!(narrowed.gate_window_ms < 67.0 || narrowed.gate_threshold > 8);
    println!("narrowed: {narrowed:?}");
    assert!(narrowed.cpu_pps > 500_000, "{method}: {narrowed:?}");
    assert!(d.log().contains("sketch gate narrowed"), "{}", d.log());

    // Calm again: the configured gate comes back.
    let mut back = false;
    for _ in 0..25 {
        sleep(Duration::from_millis(200));
        if !d.status().sources.narrowed {
            back = true;
            break;
        }
    }
    assert!(back, "the gate stayed narrow: {:?}", d.status().sources);
    let after = d.status().sources;
    assert!((after.gate_window_ms - 67.108864).abs() < 1e-6, "{after:?}");
    assert!(d.stop());
}
