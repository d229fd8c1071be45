//! Issue 23: every CLI answer is true under load. 200 real CLI processes at once for 30 s
//! (block add and del, status, mode, block list), as an operator's automation feeding a
//! blocklist in parallel would run them: no command fails, none exits 0 without its answer,
//! and the final blocklist, in the daemon and in its state file, is exactly what the clients
//! left.

use std::{collections::BTreeSet, thread::sleep, time::Duration};

use levee_tests::{daemon::DaemonLab, storm::storm};

const CLIENTS: usize = 200;
const STORM: Duration = Duration::from_secs(30);

#[test]
fn two_hundred_cli_clients_at_once_are_each_told_the_truth() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let (t, believed) = storm(&d, CLIENTS, STORM);
    eprintln!(
        "{} commands from {CLIENTS} clients in {STORM:?}: {} errors, {} silent; latency median \
         {:?}, p99 {:?}, max {:?}",
        t.commands,
        t.errors.len(),
        t.silent.len(),
        t.at(50),
        t.at(99),
        t.latencies.last().unwrap()
    );
    assert!(
        t.errors.is_empty(),
        "errors: {:?}",
        &t.errors[..t.errors.len().min(10)]
    );
    assert!(
        t.silent.is_empty(),
        "silent: {:?}",
        &t.silent[..t.silent.len().min(10)]
    );
    let listed: BTreeSet<String> = d
        .block_list()
        .iter()
        .map(|b| b.cidr.0.addr().to_string())
        .collect();
    assert_eq!(
        listed.len(),
        believed.len(),
        "the daemon lists what the clients left"
    );
    assert_eq!(listed, believed, "the daemon lists what the clients left");
    // The state file says the same, so a restart keeps it.
    sleep(Duration::from_millis(1500));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir.join("state.json")).unwrap()).unwrap();
    let saved: BTreeSet<String> = state["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["cidr"]
                .as_str()
                .unwrap()
                .trim_end_matches("/32")
                .to_string()
        })
        .collect();
    assert_eq!(saved, believed, "the state file agrees");
}
