//! gobgpd, the BGP daemon that carries Levee's announcements: its gRPC API (the client is
//! generated from GoBGP's own .proto files, see `build.rs`). Levee's own gobgpd: [`Managed`].

use std::{net::IpAddr, path::Path};

use anyhow::{Context as _, Result, bail};
use ipnet::IpNet;
use prost::Message as _;

use super::Marks;
use crate::config::escalation::BgpApi;

pub use super::managed::{Managed, config_toml};
pub use lookup::Lookup;

mod lookup;
mod paths;

/// The generated API (package `apipb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api {
    tonic::include_proto!("apipb");
}

use api::{Family, family, gobgp_api_client::GobgpApiClient};

/// A path of Levee's in gobgpd's RIB, as listed.
#[derive(Clone, Debug)]
pub struct Owned {
    /// The rule id from Levee's mark.
    pub id: u32,
    /// The destination as gobgpd prints it (a prefix, or a FlowSpec rule's components).
    pub prefix: String,
    pub path: api::Path,
}

/// A connected gobgpd API.
pub struct Gobgp {
    client: GobgpApiClient<tonic::transport::Channel>,
    /// This host's AS: the global part of the large community that marks Levee's paths.
    asn: u32,
}

/// The large community (RFC 8092) `ASN:0x4c564545:0` ("LVEE") on every path Levee
/// announces, so a restarted Levee finds and withdraws what an earlier run left in an
/// operator's own gobgpd, and touches nothing else there.
pub const TAG: u32 = 0x4c56_4545;
/// `ASN:0x4c564555:0` ("LVEU"): the path goes to the upstream group.
pub const TO_UPSTREAM: u32 = 0x4c56_4555;
/// `ASN:0x4c564546:0` ("LVEF"): the path goes to the fleet's group.
pub const TO_FLEET: u32 = 0x4c56_4546;
/// `ASN:0x4c564554:UNIX_TIME` ("LVET"): until when the sender holds the rule.
pub const UNTIL: u32 = 0x4c56_4554;

/// The unicast and FlowSpec families Levee announces in.
fn families() -> [Family; 4] {
    let f = |afi: family::Afi, safi: family::Safi| Family {
        afi: afi as i32,
        safi: safi as i32,
    };
    [
        f(family::Afi::Ip, family::Safi::Unicast),
        f(family::Afi::Ip6, family::Safi::Unicast),
        f(family::Afi::Ip, family::Safi::FlowSpecUnicast),
        f(family::Afi::Ip6, family::Safi::FlowSpecUnicast),
    ]
}

pub(super) fn any(type_name: &str, msg: &impl prost::Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/apipb.{type_name}"),
        value: msg.encode_to_vec(),
    }
}

/// Whether gobgpd learned the path from a neighbour (a path added through the API has none).
fn from_neighbor(path: &api::Path) -> bool {
    !path.neighbor_ip.is_empty() && path.neighbor_ip != "<nil>"
}

/// The unspecified address: a next hop gobgpd replaces with its own on each session.
pub(super) fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    }
}

pub(super) fn unicast(v6: bool) -> Family {
    Family {
        afi: if v6 {
            family::Afi::Ip6
        } else {
            family::Afi::Ip
        } as i32,
        safi: family::Safi::Unicast as i32,
    }
}

impl Gobgp {
    /// Connects to gobgpd's API; `asn` is this host's (it marks Levee's paths).
    pub async fn connect(api: &BgpApi, asn: u32) -> Result<Gobgp> {
        let channel = match api {
            BgpApi::Tcp(addr) => tonic::transport::Endpoint::try_from(format!("http://{addr}"))?
                .connect()
                .await
                .with_context(|| format!("cannot reach gobgpd's API at {addr}"))?,
            BgpApi::Unix(path) => unix_channel(path).await?,
            BgpApi::Managed => bail!("a managed gobgpd is reached through its own socket"),
        };
        Ok(Gobgp {
            client: GobgpApiClient::new(channel),
            asn,
        })
    }

    /// The generated client itself, for what this wrapper does not cover.
    pub fn raw(&mut self) -> &mut GobgpApiClient<tonic::transport::Channel> {
        &mut self.client
    }

    /// Levee's mark, with the rule's id as its last part (the RIB read back says which rule
    /// each path is), the groups the path goes to, and until when it is held.
    pub(super) fn tag(&self, id: u32, marks: Marks) -> prost_types::Any {
        let to = marks.to;
        let mark = |local_data1, local_data2| api::LargeCommunity {
            global_admin: self.asn,
            local_data1,
            local_data2,
        };
        let mut communities = vec![mark(TAG, id)];
        if to.upstream() {
            communities.push(mark(TO_UPSTREAM, 0));
        }
        if to.fleet() {
            communities.push(mark(TO_FLEET, 0));
        }
        communities.push(mark(UNTIL, marks.until_unix));
        any(
            "LargeCommunitiesAttribute",
            &api::LargeCommunitiesAttribute { communities },
        )
    }

    /// The paths in gobgpd's global RIB that carry Levee's mark and were added here, through
    /// the API (a neighbour's path may carry the same mark: another Levee of the same AS),
    /// looked for where `lookup` says.
    pub async fn owned_paths(&mut self, lookup: &Lookup) -> Result<Vec<Owned>> {
        let mut owned = Vec::new();
        for family in families() {
            let Some(prefixes) = lookup.asks(family) else {
                continue;
            };
            for d in self.list(family, prefixes).await? {
                for path in d.paths {
                    if from_neighbor(&path) {
                        continue;
                    }
                    if let Some(id) = self.rule_id(&path) {
                        owned.push(Owned {
                            id,
                            prefix: d.prefix.clone(),
                            // A listed path may not say its family; deletion needs it.
                            path: api::Path {
                                family: Some(family),
                                ..path
                            },
                        });
                    }
                }
            }
        }
        Ok(owned)
    }

    /// The destinations of gobgpd's global RIB in one family: only those `prefixes` select,
    /// or all of them when there are none.
    async fn list(
        &mut self,
        family: Family,
        prefixes: Vec<api::TableLookupPrefix>,
    ) -> Result<Vec<api::Destination>> {
        let mut stream = self
            .client
            .list_path(api::ListPathRequest {
                table_type: api::TableType::Global as i32,
                family: Some(family),
                prefixes,
                ..Default::default()
            })
            .await
            .context("gobgpd refused to list its paths")?
            .into_inner();
        let mut out = Vec::new();
        while let Some(d) = stream.message().await? {
            out.extend(d.destination);
        }
        Ok(out)
    }

    /// Adds a path to the global RIB; returns gobgpd's id of it.
    pub(super) async fn announce(
        &mut self,
        path: api::Path,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>> {
        let reply = self
            .client
            .add_path(api::AddPathRequest {
                table_type: api::TableType::Global as i32,
                path: Some(path),
                ..Default::default()
            })
            .await
            .with_context(|| format!("gobgpd refused {}", what()))?;
        Ok(reply.into_inner().uuid)
    }

    /// The FlowSpec paths the neighbours sent, with the rule as gobgpd prints it and the
    /// neighbour it came from (another Levee's rules too, reflected by a route server).
    pub async fn received_flowspec(&mut self) -> Result<Vec<(String, String, api::Path)>> {
        self.learned(&families()[2..]).await
    }

    /// What the neighbours sent in `families`: (destination as gobgpd prints it, neighbour,
    /// path).
    pub async fn learned(
        &mut self,
        families: &[Family],
    ) -> Result<Vec<(String, String, api::Path)>> {
        let mut out = Vec::new();
        for family in families {
            for d in self.list(*family, Vec::new()).await? {
                for path in d.paths {
                    if from_neighbor(&path) && !path.is_withdraw {
                        out.push((d.prefix.clone(), path.neighbor_ip.clone(), path));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Everything the neighbours sent, in the unicast and FlowSpec families.
    pub async fn learned_all(&mut self) -> Result<Vec<(String, String, api::Path)>> {
        self.learned(&families()).await
    }

    /// The rule id in Levee's mark, if the path carries it.
    fn rule_id(&self, path: &api::Path) -> Option<u32> {
        path.pattrs
            .iter()
            .filter(|a| a.type_url.ends_with(".LargeCommunitiesAttribute"))
            .filter_map(|a| api::LargeCommunitiesAttribute::decode(a.value.as_slice()).ok())
            .flat_map(|a| a.communities)
            .find(|c| c.global_admin == self.asn && c.local_data1 == TAG)
            .map(|c| c.local_data2)
    }

    /// Withdraws a path as listed (a listed path has no id of gobgpd's).
    pub async fn withdraw_listed(&mut self, owned: &Owned) -> Result<()> {
        self.client
            .delete_path(api::DeletePathRequest {
                table_type: api::TableType::Global as i32,
                family: owned.path.family,
                path: Some(owned.path.clone()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("gobgpd refused to withdraw {}", owned.prefix))?;
        Ok(())
    }

    /// Withdraws every path an earlier run of Levee left (marked as Levee's); returns how
    /// many. Paths without the mark are the operator's and stay.
    /// `protected` bounds the unicast search: Levee announces nothing outside it.
    pub async fn withdraw_stale(&mut self, protected: &[IpNet]) -> Result<usize> {
        let owned = self
            .owned_paths(&Lookup::Within(protected.to_vec()))
            .await?;
        for path in &owned {
            self.withdraw_listed(path).await?;
        }
        Ok(owned.len())
    }

    /// Withdraws a path this client announced.
    pub async fn delete(&mut self, uuid: &[u8]) -> Result<()> {
        self.client
            .delete_path(api::DeletePathRequest {
                table_type: api::TableType::Global as i32,
                uuid: uuid.to_vec(),
                ..Default::default()
            })
            .await
            .context("gobgpd refused to withdraw the path")?;
        Ok(())
    }

    /// The prefixes of the global RIB in one unicast family, as gobgpd holds them.
    pub async fn list_unicast(&mut self, v6: bool) -> Result<Vec<String>> {
        Ok(self
            .list(unicast(v6), Vec::new())
            .await?
            .into_iter()
            .map(|d| d.prefix)
            .collect())
    }
}

/// A gRPC channel over a unix socket.
async fn unix_channel(path: &Path) -> Result<tonic::transport::Channel> {
    let path = path.to_path_buf();
    let shown = path.display().to_string();
    tonic::transport::Endpoint::try_from("http://[::1]:50051")?
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .with_context(|| format!("cannot reach gobgpd's API at {shown}"))
}
