//! `levee signatures`: the flood signatures in force; pin one past its attack, or refuse one
//! for good.

use std::time::Instant;

use anyhow::Result;

use crate::{
    controller::Controller,
    signatures::{SignatureView, fingerprint},
};

pub fn list(c: &Controller) -> Vec<SignatureView> {
    c.flood.book.view(Instant::now())
}

/// Pins (or unpins) signature `id`: a pinned one stays in force until unpinned. Only the
/// controller's books change; the program already holds it.
pub fn pin(c: &mut Controller, id: u32, pinned: bool) -> Result<Vec<SignatureView>> {
    c.flood.book.get(id)?;
    if let Some(a) = c.flood.book.active.iter_mut().find(|a| a.id == id) {
        a.pinned = pinned;
    }
    Ok(list(c))
}

/// Refuses signature `id`: out of the program now, and its fingerprint never installed again.
/// If the program cannot be written, nothing changes.
pub fn refuse(c: &mut Controller, id: u32) -> Result<Vec<SignatureView>> {
    let sig = c.flood.book.get(id)?.signature;
    let before = c.flood.book.table();
    let after: Vec<_> = before.iter().filter(|s| s.id != id).copied().collect();
    c.fleet.set_signatures(&after, &before)?;
    c.flood.book.active.retain(|a| a.id != id);
    c.flood.book.refused.push(fingerprint(&sig));
    if let Ok(hits) = c.fleet.signature_hits() {
        c.flood.book.rebase(&hits);
    }
    tracing::info!(id, signature = %crate::signatures::Text(sig), "flood signature refused by the operator");
    Ok(list(c))
}
