//! Types and pure logic shared by the XDP program and user space.
//!
//! Everything here is `no_std` so the kernel side can use it, and plain functions over integers
//! and byte slices so the host can unit-test it without a kernel.
//!
//! # Layout
//! - [`abi`]: the `#[repr(C)]` map keys and values, map names, counter indices, event records.
//! - [`parse`]: Ethernet/VLAN/IPv4/IPv6/TCP/UDP/ICMP parsing over any [`parse::Frame`].
//! - [`limit`]: token-bucket arithmetic (GCRA form) and the count-min sketch cells.
//! - [`signature`]: flood signatures, what they match.
//! - [`stage`]: each stage's decision, called by the program and by `levee explain`.
//! - [`synack`]: the SYN-ACK of a SYN cookie, built byte for byte with its checksums.
//! - `frames` (host only): a builder of test frames, good and malformed.
//! - [`config`]: turning human rates (pps, bit/s, burst) into the encoded [`abi::Config`].
#![cfg_attr(not(test), no_std)]

#[cfg(all(feature = "user", not(test)))]
extern crate std;

pub mod abi;
pub mod config;
#[cfg(any(test, feature = "user"))]
pub mod frames;
pub mod limit;
pub mod parse;
pub mod signature;
pub mod stage;
pub mod synack;
