//! The Debian package as an operator installs it: built by `cargo xtask package` (which
//! `cargo xtask test` runs first), listed and extracted with dpkg-deb into a scratch root, and
//! the extracted binary run: its version and help, `levee run` on a lab interface with the
//! packaged config, every man page rendered, the bash completion parsed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use levee_tests::daemon::DaemonLab;

fn the_deb() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_amd64.deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: run cargo xtask package", dir.display()))
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_installs_what_an_operator_needs_and_runs() {
    let deb = the_deb();
    let listing = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/sbin/levee",
        "./etc/levee/levee.toml",
        "./lib/systemd/system/levee.service",
        "./usr/share/man/man8/levee.8.gz",
        "./usr/share/man/man8/levee-escalate-rtbh.8.gz",
        "./usr/share/bash-completion/completions/levee",
        "./usr/share/zsh/vendor-completions/_levee",
        "./usr/share/fish/vendor_completions.d/levee.fish",
        "./usr/share/levee/prometheus/levee-alerts.yml",
        "./usr/share/levee/grafana/levee-dashboard.json",
        "./usr/share/doc/levee/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} in\n{listing}"
        );
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw------- ") && l.ends_with("./etc/levee/levee.toml")),
        "the config is root's alone: {listing}"
    );
    let d0 = DaemonLab::new();
    let control = d0.dir.join("control");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control)
        .status()
        .unwrap();
    assert!(out.success());
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/levee/levee.toml");
    for script in ["preinst", "prerm", "postrm"] {
        assert!(
            !control.join(script).exists(),
            "no {script}: nothing starts by itself"
        );
    }
    // postinst only makes the user gobgpd runs as.
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(
        !postinst.contains("systemctl"),
        "nothing started: {postinst}"
    );
    drop(d0);

    let mut d = DaemonLab::new();
    let root = d.dir.join("root");
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    let levee = root.join("usr/sbin/levee");
    let run = |args: &[&str]| Command::new(&levee).args(args).output().unwrap();
    let version = run(&["--version"]);
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("levee "),
        "{version:?}"
    );
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    assert!(
        help.contains("escalate") && help.contains("check-config"),
        "{help}"
    );
    for page in std::fs::read_dir(root.join("usr/share/man/man8")).unwrap() {
        let page = page.unwrap().path();
        let out = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("NAME"),
            "{}",
            page.display()
        );
    }
    let bash = Command::new("bash")
        .arg("-n")
        .arg(root.join("usr/share/bash-completion/completions/levee"))
        .status()
        .unwrap();
    assert!(bash.success());

    // The packaged config, pointed at the lab's interface and this test's paths.
    let packaged = std::fs::read_to_string(root.join("etc/levee/levee.toml")).unwrap();
    let config = packaged
        .replace(
            "interfaces = [\"eth0\"]",
            &format!("interfaces = [\"{}\"]", d.lab.iface),
        )
        .replace(
            "\"/run/levee/levee.sock\"",
            &format!("{:?}", d.socket.display().to_string()),
        )
        .replace(
            "\"/sys/fs/bpf\"",
            &format!("{:?}", d.bpffs.display().to_string()),
        )
        .replace(
            "\"/var/lib/levee/state.json\"",
            &format!("{:?}", d.dir.join("state.json").display().to_string()),
        );
    assert_ne!(config, packaged);
    std::fs::write(&d.config, config).unwrap();
    d.binary = levee.clone();
    d.start();
    let status = d.status();
    assert_eq!(
        status.mode,
        filter_common::abi::Mode::Monitor,
        "the packaged config starts in monitor mode"
    );
    assert!(d.xdp_attached());
    assert!(d.stop(), "{}", d.log());
}
