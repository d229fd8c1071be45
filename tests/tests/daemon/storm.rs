//! Issue 23: every CLI answer is true under load. 200 real CLI processes at once for 30 s
//! (block add and del, status, mode, block list), as an operator's automation feeding a
//! blocklist in parallel would run them: no command fails, none exits 0 without its answer,
//! and the final blocklist, in the daemon and in its state file, is exactly what the clients
//! left.

use std::{
    collections::BTreeSet,
    sync::Mutex,
    thread::sleep,
    time::{Duration, Instant},
};

use levee_tests::daemon::DaemonLab;

const CLIENTS: usize = 200;
const STORM: Duration = Duration::from_secs(30);

/// What the storm's commands showed.
#[derive(Default)]
struct Tally {
    commands: usize,
    /// Non-zero exits, with their first lines.
    errors: Vec<String>,
    /// Exit 0 without the answer the command must print.
    silent: Vec<String>,
    latencies: Vec<Duration>,
}

/// Client `i`'s own addresses: 10.200.i.0/24, so each client knows what it left.
fn address(client: usize, n: u32) -> String {
    format!("10.200.{client}.{}", n % 256)
}

/// Runs one command; true if it printed `want` (or anything, for an empty `want`) and
/// exited 0. Failures are tallied.
fn run(d: &DaemonLab, args: &[&str], want: &str, tally: &Mutex<Tally>) -> bool {
    let start = Instant::now();
    let out = d.cli(args);
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut t = tally.lock().unwrap();
    t.commands += 1;
    t.latencies.push(took);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        t.errors.push(format!(
            "{args:?}: {:?} {}",
            out.status,
            err.lines().next().unwrap_or("")
        ));
        return false;
    }
    let answered = if want.is_empty() {
        !stdout.trim().is_empty()
    } else {
        stdout.trim_end() == want
    };
    if !answered {
        t.silent.push(format!("{args:?}: printed {stdout:?}"));
    }
    answered
}

/// One client's loop until `end`: adds its addresses, removes some, and asks for status,
/// mode and the list in between. Returns what it believes is blocked.
fn client(d: &DaemonLab, i: usize, end: Instant, tally: &Mutex<Tally>) -> BTreeSet<String> {
    let mut blocked = BTreeSet::new();
    let mut n = 0u32;
    let mut step = i;
    while Instant::now() < end {
        step += 1;
        match step % 6 {
            0 | 1 => {
                n += 1;
                let a = address(i, n);
                if run(d, &["block", "add", &a], &format!("blocked {a}/32"), tally) {
                    blocked.insert(a);
                }
            }
            2 => {
                if let Some(a) = blocked.iter().next().cloned()
                    && run(
                        d,
                        &["block", "del", &a],
                        &format!("unblocked {a}/32"),
                        tally,
                    )
                {
                    blocked.remove(&a);
                }
            }
            3 => {
                run(d, &["status"], "", tally);
            }
            4 => {
                run(d, &["mode"], "enforce", tally);
            }
            _ => {
                run(d, &["block", "list", "--json"], "", tally);
            }
        }
    }
    blocked
}

#[test]
fn two_hundred_cli_clients_at_once_are_each_told_the_truth() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let tally = Mutex::new(Tally::default());
    let end = Instant::now() + STORM;
    let believed: BTreeSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (d, tally) = (&d, &tally);
                s.spawn(move || client(d, i, end, tally))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    let mut t = tally.into_inner().unwrap();
    t.latencies.sort();
    let at = |q: usize| t.latencies[(t.latencies.len() * q / 100).min(t.latencies.len() - 1)];
    eprintln!(
        "{} commands from {CLIENTS} clients in {STORM:?}: {} errors, {} silent; latency median \
         {:?}, p99 {:?}, max {:?}",
        t.commands,
        t.errors.len(),
        t.silent.len(),
        at(50),
        at(99),
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
