//! The sockets this host serves, as the kernel lists them through netlink sock_diag.
//!
//! Levee drops TCP and UDP packets addressed to ports that no socket of this host serves;
//! this module is how it learns what the host serves: TCP sockets in LISTEN and bound UDP
//! sockets, IPv4 and IPv6, in the network namespace of the calling thread.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, nlas::Nla},
};
use netlink_sys::{Socket as NetlinkSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Socket {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    /// IPV6_V6ONLY of an AF_INET6 socket; always false for AF_INET. The kernel reports it
    /// only for sockets in LISTEN or CLOSE (unconnected UDP), so false for connected UDP.
    pub v6only: bool,
    /// The socket's owner (the uid that created it).
    pub uid: u32,
}

/// TCP sockets in LISTEN state and unconnected UDP sockets bound to a port (a connected UDP
/// socket is a client: its replies are flows the egress program records), IPv4 and IPv6,
/// deduplicated and sorted.
pub fn served_sockets() -> Result<Vec<Socket>> {
    let mut netlink =
        NetlinkSocket::new(NETLINK_SOCK_DIAG).context("opening a NETLINK_SOCK_DIAG socket")?;
    netlink
        .bind_auto()
        .context("binding the NETLINK_SOCK_DIAG socket")?;
    netlink
        .connect(&SocketAddr::new(0, 0))
        .context("connecting the NETLINK_SOCK_DIAG socket to the kernel")?;
    let dumps = [
        (Proto::Tcp, StateFlags::LISTEN, "listening TCP"),
        (Proto::Udp, StateFlags::CLOSE, "bound UDP"),
    ];
    let mut sockets = Vec::new();
    let mut sequence = 0;
    for (proto, states, what) in dumps {
        for (family, name) in [(AF_INET, "IPv4"), (AF_INET6, "IPv6")] {
            sequence += 1;
            dump(
                &netlink,
                sequence,
                family,
                proto,
                states.clone(),
                &mut sockets,
            )
            .with_context(|| format!("listing {what} {name} sockets through sock_diag"))?;
        }
    }
    sockets.sort_unstable();
    sockets.dedup();
    Ok(sockets)
}

/// Sends one inet_diag dump request and collects its answers until NLMSG_DONE.
fn dump(
    netlink: &NetlinkSocket,
    sequence: u32,
    family: u8,
    proto: Proto,
    states: StateFlags,
    sockets: &mut Vec<Socket>,
) -> Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = sequence;
    let request = InetRequest {
        family,
        protocol: match proto {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        },
        // INET_DIAG_SKV6ONLY needs no extension bit: the kernel always sends it for
        // AF_INET6 sockets in LISTEN or CLOSE.
        extensions: ExtensionFlags::empty(),
        states,
        socket_id: if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        },
    };
    let mut message = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    netlink
        .send(&buffer, 0)
        .context("sending the dump request")?;

    loop {
        let (datagram, _) = netlink.recv_from_full().context("receiving the dump")?;
        let mut rest = &datagram[..];
        while !rest.is_empty() {
            let reply = NetlinkMessage::<SockDiagMessage>::deserialize(rest)
                .context("decoding a sock_diag reply")?;
            // Messages are 4-byte aligned; the last one of a datagram may lack the padding.
            let aligned = (reply.header.length as usize + 3) & !3;
            rest = &rest[aligned.min(rest.len())..];
            if reply.header.sequence_number != sequence {
                continue;
            }
            match reply.payload {
                NetlinkPayload::Done(done) if done.code != 0 => {
                    return Err(std::io::Error::from_raw_os_error(done.code.abs()))
                        .context("the kernel ended the dump with an error");
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(error) if error.code.is_some() => {
                    return Err(error.to_io()).context("the kernel refused the dump request");
                }
                NetlinkPayload::Overrun(_) => bail!("the kernel reported an overrun"),
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    sockets.extend(served(proto, &response));
                }
                _ => {}
            }
        }
    }
}

/// The socket a dump answer names, unless it is bound to no port.
fn served(proto: Proto, response: &InetResponse) -> Option<Socket> {
    let id = &response.header.socket_id;
    (id.source_port != 0).then(|| Socket {
        proto,
        addr: id.source_address,
        port: id.source_port,
        v6only: response.header.family == AF_INET6 && response.nlas.contains(&Nla::SkV6Only(true)),
        uid: response.header.uid,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};

    use super::*;

    fn served_has(proto: Proto, addr: IpAddr, port: u16) -> bool {
        served_sockets()
            .unwrap()
            .iter()
            .any(|s| (s.proto, s.addr, s.port) == (proto, addr, port))
    }

    #[test]
    fn listeners_and_bound_udp_appear_and_go() {
        let tcp4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let tcp6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let tcp6_any = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
        let udp4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let udp6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        // std sets IPV6_V6ONLY on no socket, so a wildcard one follows the sysctl; the kernel
        // itself sets it on binding a specific, non-v4-mapped IPv6 address such as ::1.
        let bindv6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap();
        let sockets = served_sockets().unwrap();
        for (proto, addr, v6only) in [
            (Proto::Tcp, tcp4.local_addr().unwrap(), false),
            (Proto::Tcp, tcp6.local_addr().unwrap(), true),
            (
                Proto::Tcp,
                tcp6_any.local_addr().unwrap(),
                bindv6only.trim() == "1",
            ),
            (Proto::Udp, udp4.local_addr().unwrap(), false),
            (Proto::Udp, udp6.local_addr().unwrap(), true),
        ] {
            let want = Socket {
                proto,
                addr: addr.ip(),
                port: addr.port(),
                v6only,
                // SAFETY: getuid has no preconditions.
                uid: unsafe { libc::getuid() },
            };
            assert!(sockets.contains(&want), "{want:?} not in {sockets:?}");
        }
        let mut sorted = sockets.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sockets, sorted);

        let port = tcp4.local_addr().unwrap().port();
        drop(tcp4);
        assert!(!served_has(Proto::Tcp, Ipv4Addr::LOCALHOST.into(), port));
    }

    #[test]
    fn bound_but_not_listening_tcp_is_not_served() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(!served_has(Proto::Tcp, Ipv4Addr::LOCALHOST.into(), port));
    }
}
