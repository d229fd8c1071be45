//! The gobgpd Levee starts itself (escalation.api = "managed"): its config generated from
//! `[escalation]`, its API on a unix socket in a private folder, run as a user of its own with
//! no capability, and killed with Levee.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use ipnet::IpNet;

use super::gobgp::{Gobgp, TO_FLEET, TO_UPSTREAM};
use crate::config::{
    EscalationSettings,
    escalation::{BgpApi, Role},
};

/// A gobgpd that Levee started: it dies with Levee.
pub struct Managed {
    child: Child,
    pub socket: PathBuf,
}

impl Managed {
    /// Writes gobgpd's config for `settings` in `dir` and starts it, its API on a unix socket
    /// in `dir`; waits until the API answers.
    pub async fn start(settings: &EscalationSettings, dir: &Path) -> Result<Managed> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
        let (uid, gid) = user_ids(&settings.bgp_user)?;
        // gobgpd's alone (and root's, who reaches it with CAP_DAC_READ_SEARCH): the config
        // holds the sessions' passwords, the API can announce. Root's while Levee writes it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let own = |path: &Path, uid: u32, gid: u32| {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to uid {uid}", path.display()))
        };
        own(dir, 0, 0)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
        let config = dir.join("gobgpd.toml");
        let text = config_toml(settings)?;
        let _ = std::fs::remove_file(&config);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let socket = dir.join("api.sock");
        let _ = std::fs::remove_file(&socket);
        own(&config, uid, gid)?;
        own(dir, uid, gid)?;
        let mut cmd = Command::new("gobgpd");
        cmd.arg("-f")
            .arg(&config)
            .arg("-t")
            .arg("toml")
            .arg("-p")
            .arg("--pprof-disable")
            .arg(format!("--api-hosts=unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Levee's own service-manager channel is Levee's, not gobgpd's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: plain system calls in the child before exec; async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            cmd.pre_exec(move || {
                let fail = || Err(std::io::Error::last_os_error());
                // A user of its own, no supplementary group: a network-facing BGP parser
                // gets no capability (setuid from root clears them all) and cannot touch
                // Levee's pinned maps.
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return fail();
                }
                // The API socket it makes is reached through its private folder only.
                libc::umask(0);
                // The kernel kills gobgpd when Levee's thread that started it dies, so a
                // crashed Levee drops the BGP session and the upstream withdraws everything.
                // Set after the credential change, which would clear it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return fail();
                }
                // Levee died before the signal was armed.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .context("cannot start gobgpd (cargo xtask setup installs the gobgpd package)")?;
        let mut managed = Managed { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = managed.child.try_wait()? {
                bail!("gobgpd exited at start ({status}); its log is above");
            }
            if managed.socket.exists()
                && Gobgp::connect(&BgpApi::Unix(managed.socket.clone()), settings.asn)
                    .await
                    .is_ok()
            {
                return Ok(managed);
            }
            if Instant::now() > deadline {
                bail!(
                    "gobgpd's API did not answer at {} within 10 s",
                    managed.socket.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn api(&self) -> BgpApi {
        BgpApi::Unix(self.socket.clone())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How gobgpd ended, once it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// The uid and gid of `user`, which must exist and must not be root.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let name = std::ffi::CString::new(user)?;
    // SAFETY: getpwnam with a valid C string; the fields are copied out at once (the daemon
    // calls it from one thread at a time).
    let ids = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    };
    match ids {
        Some((0, _)) => {
            bail!("field escalation.bgp_user: {user} is root; gobgpd runs as a user of its own")
        }
        Some(ids) => Ok(ids),
        None => bail!(
            "field escalation.bgp_user: no user {user}: create it (the package and `cargo xtask setup` do: useradd --system levee-bgp)"
        ),
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// gobgpd's config: this host's AS and router id, the neighbours with the unicast and
/// FlowSpec families, each family with the neighbour's max-prefix (gobgpd closes a session
/// that sends more, and warns at 80%), graceful restart off (a dead Levee's routes must go
/// at once), and BGP never listened for (port -1: gobgpd only connects out).
pub fn config_toml(s: &EscalationSettings) -> Result<String> {
    let Some(router_id) = s.router_id else {
        bail!("field escalation.router_id: the managed BGP daemon needs a router id");
    };
    let mut out = format!(
        "[global.config]\n  as = {}\n  router-id = \"{router_id}\"\n  port = -1\n",
        s.asn
    );
    // Only Levee's own paths go out, each to the group its mark names: a route learned from
    // one neighbour is never passed to another (no route leak between two upstreams, and a
    // node never re-announces the fleet's rules). Only FlowSpec comes in, and only when
    // Levee enforces it: no full table to hold or to list.
    // (The global import policy also sees the paths Levee adds: those are "local".)
    let import = if s.accept_flowspec {
        "\"levee-import-local\", \"levee-flowspec\""
    } else {
        "\"levee-import-local\""
    };
    out += &format!(
        "[global.apply-policy.config]\n  export-policy-list = [\"levee-local\"]\n  default-export-policy = \"reject-route\"\n  import-policy-list = [{import}]\n  default-import-policy = \"reject-route\"\n"
    );
    out += &export_policy(s);
    out += "\n[[policy-definitions]]\n  name = \"levee-flowspec\"\n  [[policy-definitions.statements]]\n    name = \"flowspec\"\n    [policy-definitions.statements.conditions.bgp-conditions]\n      afi-safi-in-list = [\"ipv4-flowspec\", \"ipv6-flowspec\"]\n    [policy-definitions.statements.actions]\n      route-disposition = \"accept-route\"\n";
    for n in &s.neighbors {
        out += &format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.address, n.asn
        );
        if let Some(p) = &n.password {
            out += &format!("    auth-password = {}\n", toml_string(p));
        }
        let families: &[&str] = if n.address.is_ipv4() {
            &["ipv4-unicast", "ipv4-flowspec"]
        } else {
            &["ipv6-unicast", "ipv6-flowspec"]
        };
        for f in families {
            out += &format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n    [neighbors.afi-safis.prefix-limit.config]\n      max-prefixes = {}\n      shutdown-threshold-pct = 80\n",
                n.max_prefixes
            );
        }
    }
    Ok(out)
}

/// The policy `levee-local`: Levee's own paths go to each neighbour group by the mark they
/// carry ([`TO_UPSTREAM`], [`TO_FLEET`]), the fleet's with its communities added; a group
/// with no neighbour gets no statement (an empty neighbour set would match every neighbour).
/// The import side accepts only local paths and, with accept_flowspec, FlowSpec.
fn export_policy(s: &EscalationSettings) -> String {
    let mut sets = String::new();
    let mut statements = String::new();
    for (role, mark) in [(Role::Upstream, TO_UPSTREAM), (Role::Fleet, TO_FLEET)] {
        let members: Vec<String> = s
            .neighbors
            .iter()
            .filter(|n| n.role == role)
            .map(|n| format!("\"{}\"", IpNet::from(n.address)))
            .collect();
        if members.is_empty() {
            continue;
        }
        let name = role.name();
        sets += &format!(
            "[[defined-sets.neighbor-sets]]\n  neighbor-set-name = \"levee-{name}\"\n  neighbor-info-list = [{}]\n",
            members.join(", ")
        );
        sets += &format!(
            "[[defined-sets.bgp-defined-sets.large-community-sets]]\n  large-community-set-name = \"levee-to-{name}\"\n  large-community-list = [\"^{}:{mark}:0$\"]\n",
            s.asn
        );
        statements += &format!(
            "  [[policy-definitions.statements]]\n    name = \"to-{name}\"\n    [policy-definitions.statements.conditions.match-neighbor-set]\n      neighbor-set = \"levee-{name}\"\n    [policy-definitions.statements.conditions.bgp-conditions]\n      route-type = \"local\"\n    [policy-definitions.statements.conditions.bgp-conditions.match-large-community-set]\n      large-community-set = \"levee-to-{name}\"\n      match-set-options = \"any\"\n"
        );
        let communities = if role == Role::Fleet {
            &s.fleet.communities
        } else {
            &Vec::new()
        };
        if !communities.is_empty() {
            let list: Vec<String> = communities.iter().map(|c| format!("\"{c}\"")).collect();
            statements += &format!(
                "    [policy-definitions.statements.actions.bgp-actions.set-community]\n      options = \"add\"\n      [policy-definitions.statements.actions.bgp-actions.set-community.set-community-method]\n        communities-list = [{}]\n",
                list.join(", ")
            );
        }
        statements += "    [policy-definitions.statements.actions]\n      route-disposition = \"accept-route\"\n";
    }
    // Paths of Levee's come back through the global import policy too: accepted as local.
    let import_local = "  [[policy-definitions.statements]]\n    name = \"local-paths\"\n    [policy-definitions.statements.conditions.bgp-conditions]\n      route-type = \"local\"\n    [policy-definitions.statements.actions]\n      route-disposition = \"accept-route\"\n";
    format!(
        "\n{sets}\n[[policy-definitions]]\n  name = \"levee-local\"\n{statements}\n[[policy-definitions]]\n  name = \"levee-import-local\"\n{import_local}"
    )
}

/// A TOML string literal (quotes and escapes) for a value from the operator.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::escalation::{Community, Neighbor};

    #[test]
    fn each_group_is_sent_only_its_own_marked_paths() {
        let neighbor = |address: &str, role| Neighbor {
            address: address.parse().unwrap(),
            asn: 64512,
            role,
            password: None,
            max_prefixes: 100,
        };
        let mut s = EscalationSettings {
            asn: 64512,
            router_id: Some("192.0.2.1".parse().unwrap()),
            neighbors: vec![
                neighbor("10.0.0.1", Role::Upstream),
                neighbor("10.0.0.9", Role::Fleet),
            ],
            ..EscalationSettings::default()
        };
        s.fleet.communities = vec![Community(64512, 4040)];
        let text = config_toml(&s).unwrap();
        if let Ok(path) = std::env::var("LEVEE_WRITE_GOBGPD_TOML") {
            std::fs::write(path, &text).unwrap();
        }
        let v: toml::Value = toml::from_str(&text).expect("valid TOML");
        let sets = v["defined-sets"]["neighbor-sets"].as_array().unwrap();
        assert_eq!(sets.len(), 2, "{text}");
        assert_eq!(
            sets[1]["neighbor-info-list"].as_array().unwrap()[0].as_str(),
            Some("10.0.0.9/32")
        );
        assert!(text.contains("\"^64512:1280722246:0$\""), "{text}");
        assert!(
            text.contains("communities-list = [\"64512:4040\"]"),
            "{text}"
        );
        // Without a fleet neighbour there is no fleet statement (an empty set matches all).
        s.neighbors.pop();
        let text = config_toml(&s).unwrap();
        assert!(!text.contains("levee-fleet"), "{text}");
    }
}
