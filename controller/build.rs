//! Builds the XDP object (filter-ebpf) for the BPF target with aya-build, which runs
//! `rustup run nightly cargo build -Z build-std=core` and copies the result to OUT_DIR, and
//! the gRPC client of gobgpd from GoBGP's own .proto files, as Debian ships them with the
//! gobgpd it packages (golang-github-osrg-gobgp-dev), compiled by protox (no protoc).
//! `cargo xtask setup` installs what these need (rust-src, bpf-linker, the .proto files).

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Where golang-github-osrg-gobgp-dev puts GoBGP's API definitions.
const GOBGP_PROTO_DIR: &str = "/usr/share/gocode/src/github.com/osrg/gobgp/api";

fn main() -> anyhow::Result<()> {
    build_gobgp_client()?;
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("failed to read the workspace metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "filter-ebpf")
        .ok_or_else(|| anyhow!("filter-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("filter-ebpf manifest has no parent directory"))?;
    // aya-build watches filter-ebpf's own folder; the program also compiles filter-common
    // (the parser, the ABI), so a change there must rebuild it too.
    for p in &metadata.packages {
        if p.name.as_str() == "filter-common"
            && let Some(dir) = p.manifest_path.parent()
        {
            println!("cargo:rerun-if-changed={dir}/src");
            println!("cargo:rerun-if-changed={dir}/Cargo.toml");
        }
    }
    aya_build::build_ebpf(
        [Package {
            name: "filter-ebpf",
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("failed to build the XDP program; run `cargo xtask setup` first")
}

/// The client side of gobgpd's gRPC API (AddPath, DeletePath, ListPath...).
fn build_gobgp_client() -> anyhow::Result<()> {
    let files = ["gobgp.proto", "attribute.proto", "capability.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={GOBGP_PROTO_DIR}/{f}");
    }
    let fds = protox::compile(files, [GOBGP_PROTO_DIR]).with_context(|| {
        format!(
            "failed to read GoBGP's API from {GOBGP_PROTO_DIR}; run `cargo xtask setup` (it installs golang-github-osrg-gobgp-dev)"
        )
    })?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)
        .context("failed to generate the gobgpd client")
}
