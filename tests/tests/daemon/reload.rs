//! SIGHUP re-reads the config: its list entries are swapped for the new ones, and a config that
//! does not parse is logged and changes nothing.

use std::{thread::sleep, time::Duration};

use levee_tests::{netns::CLIENT_V4, traffic::DATAGRAMS};

use crate::delivered;

#[test]
fn sighup_reloads_config_and_a_broken_config_changes_nothing() {
    let (d, rx) = crate::blocking_second_client();

    // The config now blocks another source instead.
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock = [\"{}\"]",
        CLIENT_V4[2]
    ));
    d.signal(libc::SIGHUP);
    sleep(Duration::from_millis(500));
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        DATAGRAMS,
        "old config entry removed"
    );
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[2]),
        0,
        "new config entry active"
    );

    // A broken config: logged, and the running state stays.
    d.write_config("mode = \"enforce\"\n[lists]\nblock = [\"not-a-cidr\"]");
    d.signal(libc::SIGHUP);
    sleep(Duration::from_millis(500));
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[2]),
        0,
        "still blocked after a broken reload"
    );
    assert!(d.log().contains("reload failed"), "{}", d.log());
}
