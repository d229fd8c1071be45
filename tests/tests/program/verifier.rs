//! The verifier's walk of each program leaves headroom under the kernel's limit of a million
//! instructions: a change that pushes a program close to it fails here, with the figures,
//! rather than on a kernel whose verifier prunes a little worse.

use filter_common::abi::{Config, Mode};
use levee_tests::Harness;

/// The most a program may take of the limit.
const HEADROOM_LIMIT: u32 = 900_000;

#[test]
fn every_program_leaves_the_verifier_headroom() {
    let h = Harness::new(Config::new(Mode::Enforce));
    let counts = h.dp.verified_instructions().expect("program info");
    eprintln!("verified instructions: {counts:?}");
    assert!(
        counts.iter().any(|(name, _)| name == "levee"),
        "the main program is among them: {counts:?}"
    );
    for (name, n) in &counts {
        assert!(
            *n <= HEADROOM_LIMIT,
            "{name}: the verifier walked {n} instructions, over {HEADROOM_LIMIT}"
        );
    }
}
