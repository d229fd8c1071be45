//! Idempotent set-up of everything outside cargo's reach: the nightly toolchain's rust-src
//! (for `-Z build-std=core`), bpf-linker built against that toolchain's own LLVM, and the
//! Debian packages the tests use. A second run checks and returns in seconds.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run_cmd;

/// The toolchain aya-build compiles the XDP program with.
const EBPF_TOOLCHAIN: &str = "nightly";

/// Commands (or, as absolute paths, files) the build, the tests and the lab need, and the
/// Debian package that brings each.
const DEBIAN_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bpftool", "bpftool"),
    // promtool checks and tests the shipped alert rules; prometheus scrapes in a lab test.
    ("promtool", "prometheus"),
    // The bench's peers: xdp-filter and an nftables netdev-ingress drop set.
    ("xdp-filter", "xdp-tools"),
    ("nft", "nftables"),
    // Escalation upstream: the BGP daemon Levee drives, the upstream router of the tests, and
    // GoBGP's API definitions the build generates its gobgpd client from (the same version).
    ("gobgpd", "gobgpd"),
    ("birdc", "bird2"),
    // The systemd unit is checked with systemd-analyze (verify, security).
    ("systemd-analyze", "systemd"),
    // The generated man pages are rendered with man -l in the tests.
    ("man", "man-db"),
    // `levee capture` files are read back with tcpdump in the tests and the demo.
    ("tcpdump", "tcpdump"),
    (
        "/usr/share/gocode/src/github.com/osrg/gobgp/api/gobgp.proto",
        "golang-github-osrg-gobgp-dev",
    ),
];

pub fn run() -> Result<()> {
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    ensure_debian_tools()?;
    ensure_cargo_deb()?;
    ensure_bgp_user()?;
    Ok(())
}

/// The user the managed gobgpd runs as (escalation.bgp_user's default), as the package's
/// postinst makes it.
fn ensure_bgp_user() -> Result<()> {
    let exists = Command::new("getent")
        .args(["passwd", "levee-bgp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return Ok(());
    }
    eprintln!("setup: adding the system user levee-bgp (the managed gobgpd runs as it)");
    run_cmd(Command::new("useradd").args([
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "levee-bgp",
    ]))
}

/// cargo-deb, which `cargo xtask package` (and so `cargo xtask test`) builds the .deb with.
const CARGO_DEB_VERSION: &str = "3.8.0";

fn ensure_cargo_deb() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION)
        });
    if installed {
        return Ok(());
    }
    eprintln!("setup: installing cargo-deb {CARGO_DEB_VERSION}");
    crate::run_cmd(Command::new("cargo").args([
        "install",
        "--locked",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_nightly() -> Result<()> {
    if output(Command::new("rustup").args(["run", EBPF_TOOLCHAIN, "rustc", "--version"])).is_ok() {
        return Ok(());
    }
    eprintln!("setup: installing the {EBPF_TOOLCHAIN} toolchain");
    run_cmd(Command::new("rustup").args([
        "toolchain",
        "install",
        EBPF_TOOLCHAIN,
        "--profile",
        "minimal",
    ]))
    .context("the XDP program needs a nightly toolchain and rustup could not install one")
}

fn sysroot() -> Result<String> {
    Ok(
        output(Command::new("rustup").args([
            "run",
            EBPF_TOOLCHAIN,
            "rustc",
            "--print",
            "sysroot",
        ]))?
        .trim()
        .to_string(),
    )
}

fn ensure_rust_src() -> Result<()> {
    let library = format!("{}/lib/rustlib/src/rust/library/core", sysroot()?);
    if std::path::Path::new(&library).is_dir() {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to {EBPF_TOOLCHAIN}");
    run_cmd(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))
    .context("rust-src is needed to build core for the BPF target")
}

/// The LLVM major version of the eBPF toolchain's rustc.
fn llvm_major() -> Result<u32> {
    let vv = output(Command::new("rustup").args(["run", EBPF_TOOLCHAIN, "rustc", "-vV"]))?;
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("rustc -vV printed no LLVM version")?;
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the LLVM major from {version:?}"))
}

/// bpf-linker is usable if it runs and the libLLVM it links is the toolchain's, same major.
fn bpf_linker_ok(major: u32) -> bool {
    let Ok(path) = output(Command::new("sh").args(["-c", "command -v bpf-linker"])) else {
        return false;
    };
    let Ok(ldd) = output(Command::new("ldd").arg(path.trim())) else {
        return false;
    };
    ldd.lines().any(|l| {
        l.contains("libLLVM") && !l.contains("not found") && l.contains(&format!(".so.{major}."))
    })
}

fn ensure_bpf_linker() -> Result<()> {
    let major = llvm_major()?;
    if bpf_linker_ok(major) {
        return Ok(());
    }
    let sysroot = sysroot()?;
    let lib_dir = format!("{sysroot}/lib");
    let lib = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {lib_dir}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM") && n.ends_with(".so"))
        .with_context(|| {
            format!("no libLLVM*.so in {lib_dir}: the {EBPF_TOOLCHAIN} toolchain ships none")
        })?;
    let lib_name = lib.trim_start_matches("lib").trim_end_matches(".so");
    eprintln!("setup: building bpf-linker against {lib} (LLVM {major}), about a minute");
    let rustflags = format!(
        "-C link-arg=-L{lib_dir} -C link-arg=-l{lib_name} -C link-arg=-Wl,-rpath,{lib_dir}"
    );
    run_cmd(
        Command::new("rustup")
            .args([
                "run",
                EBPF_TOOLCHAIN,
                "cargo",
                "install",
                "bpf-linker",
                "--locked",
                "--force",
            ])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{major},no-llvm-linking"))
            .env("RUSTFLAGS", rustflags),
    )
    .context("failed to build bpf-linker")?;
    if !bpf_linker_ok(major) {
        bail!(
            "bpf-linker was built but does not link the toolchain's LLVM {major}; is ~/.cargo/bin on PATH?"
        );
    }
    Ok(())
}

fn ensure_debian_tools() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_TOOLS
        .iter()
        .filter(|(cmd, _)| {
            if cmd.starts_with('/') {
                return !std::path::Path::new(cmd).exists();
            }
            !Command::new("sh")
                .args(["-c", &format!("command -v {cmd}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if Command::new("sh")
        .args(["-c", "command -v apt-get"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        bail!(
            "missing {}: install these packages with your package manager",
            missing.join(" ")
        );
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("failed to install {} (are you root?)", missing.join(" ")))
}
