//! Reading gobgpd's RIB back: for `levee escalate list`, and every [`super::RECONCILE_EVERY`]
//! to make it hold exactly the rules held (missing ones announced again, strays withdrawn).
//! Only where Levee's paths can be is read ([`Lookup`]), never a full table.

use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::{Bgp, EscalationsView, Reply, Waiter};
use crate::{
    api::Response,
    escalation::{
        calls::Job,
        gobgp::{Lookup, Owned},
    },
};

/// How long `levee escalate list` waits for the RIB before it shows the books alone.
pub(super) const LIST_WAIT: Duration = Duration::from_secs(3);
/// Reads of the RIB not answered yet, at most: a list beyond them waits for the last one.
const MAX_READS_OUT: usize = 2;

impl Bgp {
    /// Asks for Levee's paths (the rules held and those abandoned); returns the read's token.
    pub(super) fn read_rib(&mut self, deadline: Instant) -> u64 {
        self.last_read += 1;
        self.reads_out += 1;
        let lookup = Lookup::of(
            self.rules
                .values()
                .map(|a| &a.rule)
                .chain(self.abandoned.values().map(|(r, _)| r)),
        );
        if let Some(calls) = &self.calls {
            calls.send(
                Job::ReadRib {
                    token: self.last_read,
                    lookup,
                },
                deadline,
            );
        }
        self.last_read
    }

    /// `levee escalate list`: answered when the RIB is read, or after [`LIST_WAIT`] from
    /// the books alone, saying so.
    pub fn list(&mut self, reply: Reply) {
        if self.calls.is_none() {
            let _ = reply.send(Response::ok(self.list_view(None, None)));
            return;
        }
        let now = Instant::now();
        let token = if self.reads_out >= MAX_READS_OUT {
            self.last_read
        } else {
            self.read_rib(now + LIST_WAIT)
        };
        self.waiters.push(Waiter::List {
            token,
            deadline: now + LIST_WAIT,
            reply,
        });
    }

    /// A read of the RIB came back: its lists are answered, and if it was the check's, the
    /// RIB is made to hold the rules held.
    pub(super) fn rib_read(&mut self, token: u64, owned: Result<Vec<Owned>, String>) {
        self.reads_out = self.reads_out.saturating_sub(1);
        let (shown, error) = match &owned {
            Ok(o) => (Some(o.as_slice()), None),
            Err(e) => (None, Some(format!("cannot read gobgpd's RIB: {e}"))),
        };
        let view = self.list_view(shown, error);
        let mut i = 0;
        while i < self.waiters.len() {
            if matches!(&self.waiters[i], Waiter::List { token: t, .. } if *t == token) {
                if let Waiter::List { reply, .. } = self.waiters.swap_remove(i) {
                    let _ = reply.send(Response::ok(view.clone()));
                }
            } else {
                i += 1;
            }
        }
        if self.reconciling == Some(token) {
            self.reconciling = None;
            match owned {
                Ok(owned) => self.reconcile(token, &owned),
                Err(e) => {
                    self.count_error();
                    self.set_up(false);
                    error!("escalation: cannot read gobgpd's RIB: {e}");
                }
            }
        }
    }

    /// Makes the RIB hold exactly the rules held: missing ones announced again, strays
    /// withdrawn (both by [`crate::escalation::calls::Calls`], without waiting).
    fn reconcile(&mut self, token: u64, owned: &[Owned]) {
        self.set_up(true);
        let Some(calls) = &self.calls else {
            return;
        };
        for stray in owned.iter().filter(|o| !self.rules.contains_key(&o.id)) {
            warn!(path = %stray.prefix, "a path of Levee's that no rule holds: withdrawn");
            calls.send(
                Job::WithdrawStray(Box::new(stray.clone())),
                Instant::now() + super::RECONCILE_EVERY,
            );
        }
        let now = Instant::now();
        let missing: Vec<u32> = self
            .rules
            .iter()
            // Expired, being withdrawn, not yet confirmed or confirmed after the read was
            // sent: never announced again.
            .filter(|(id, a)| {
                a.expires > now
                    && a.withdrawing.is_none()
                    && a.uuid.is_some()
                    && a.visible_from_read <= token
                    && !owned.iter().any(|o| o.id == **id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in missing {
            warn!(id, rule = %self.rules[&id].rule, "missing in gobgpd's RIB: announced again");
            self.announce_again(id);
        }
    }

    /// The list: the rules held, what the RIB shows of them (`owned`, None when it could not
    /// be read) and the strays.
    pub(super) fn list_view(
        &self,
        owned: Option<&[Owned]>,
        rib_error: Option<String>,
    ) -> EscalationsView {
        let mut view = EscalationsView {
            mode: self.settings.mode.name().into(),
            speaker: self.speaker_name(),
            rib_error,
            received: self.received.clone(),
            ..Default::default()
        };
        let owned = owned.unwrap_or_default();
        for id in self.rules.keys() {
            let in_rib = owned.iter().find(|o| o.id == *id).map(|o| o.prefix.clone());
            view.rules.push(self.view(*id, in_rib));
        }
        view.stray = owned
            .iter()
            .filter(|o| !self.rules.contains_key(&o.id))
            .map(|o| o.prefix.clone())
            .collect();
        view
    }
}
