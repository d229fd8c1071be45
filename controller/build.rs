//! Builds the XDP object (filter-ebpf) for the BPF target with aya-build, which runs
//! `rustup run nightly cargo build -Z build-std=core` and copies the result to OUT_DIR.
//! `cargo xtask setup` installs what that needs (rust-src, bpf-linker).

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
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
