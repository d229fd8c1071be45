//! What the program counts a packet under: the mode it ran in, its action, its class and
//! its reason, and the COUNTERS slot of each triple.

/// An enum the program and user space share: `#[repr(u32)]` with discriminants from 0 in
/// order (new variants go last: the counters' layout), its variants in `ALL`, their number in
/// `COUNT`, and each one's name (as metrics and the CLI print it) in `name()`, all from one
/// list.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const COUNT: usize = [$($name::$variant),+].len();
            pub const ALL: [$name; $name::COUNT] = [$($name::$variant),+];

            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Named for $name {
            fn name(self) -> &'static str {
                $name::name(self)
            }
            fn from_name(text: &str) -> Option<Self> {
                $name::ALL.into_iter().find(|v| v.name() == text)
            }
        }
    };
}

/// A shared enum known by its name (how metrics, the CLI and JSON show it).
pub trait Named: Sized + Copy {
    fn name(self) -> &'static str;
    /// The variant of this name, if any.
    fn from_name(text: &str) -> Option<Self>;
}

named_enum! {
    /// Mitigation mode, read from [`super::Config::mode`] on every packet.
    pub enum Mode {
        /// Pass everything, count only.
        Off = "off",
        /// Decide and count what would be dropped, pass everything.
        Monitor = "monitor",
        /// Drop what the rules say.
        Enforce = "enforce",
        /// Drop all IP traffic that is not allowlisted.
        Lockdown = "lockdown",
    }
}

named_enum! {
    /// The program's stages, in the order it runs them (filter-ebpf's `check`, then the
    /// received rules on what would pass): the order `levee explain` walks them in.
    pub enum Stage {
        /// Levee's own BGP sessions, before anything can cut them.
        BgpSession = "bgp session",
        Allowlist = "allowlist",
        Lockdown = "lockdown",
        Blocklist = "blocklist",
        /// The static signatures: amplification ports, TCP flags, fragments.
        Signatures = "signatures",
        Strict = "strict",
        PerSource = "per_source",
        Aggregate = "aggregate",
        /// The FlowSpec rules received from BGP neighbours.
        Received = "received",
    }
}

impl Mode {
    /// The action this mode gives a packet the rules object to.
    #[inline(always)]
    pub const fn objected(self) -> Action {
        match self {
            Mode::Off => Action::Pass,
            Mode::Monitor => Action::WouldDrop,
            Mode::Enforce | Mode::Lockdown => Action::Drop,
        }
    }

    pub const fn from_u32(v: u32) -> Mode {
        match v {
            0 => Mode::Off,
            1 => Mode::Monitor,
            3 => Mode::Lockdown,
            _ => Mode::Enforce,
        }
    }
}

named_enum! {
    /// What happened to a packet.
    pub enum Action {
        Pass = "pass",
        Drop = "drop",
        /// Monitor mode: the rules would have dropped it; it was passed.
        WouldDrop = "would_drop",
    }
}

named_enum! {
    /// Traffic class: per-source and aggregate limits are set per class.
    pub enum Class {
        /// TCP with SYN set and ACK clear: a connection attempt.
        TcpSyn = "tcp_syn",
        TcpOther = "tcp_other",
        Udp = "udp",
        /// ICMP and ICMPv6.
        Icmp = "icmp",
        /// Any other IP protocol, and frames that are not IP or could not be parsed.
        Other = "other",
    }
}

named_enum! {
    /// Why a packet got its action. Every drop has exactly one reason.
    pub enum Reason {
        /// Passed every check.
        Clean = "clean",
        /// Mode `off`: passed without checks.
        ModeOff = "mode_off",
        /// Not IP (ARP, LLDP...): always passed.
        NonIp = "non_ip",
        Allowlisted = "allowlisted",
        Blocklisted = "blocklisted",
        /// Lockdown mode and not allowlisted.
        Lockdown = "lockdown",
        /// UDP from a reflection/amplification source port.
        AmpPort = "amp_port",
        /// Impossible TCP flag set (SYN+FIN, SYN+RST, NULL, XMAS).
        TcpFlags = "tcp_flags",
        /// IP fragment, with the fragment signature on.
        Fragment = "fragment",
        /// The source went over its per-class limit (this packet started its penalty).
        SourceRate = "source_rate",
        /// The source is serving a penalty block time.
        SourcePenalty = "source_penalty",
        /// The per-class aggregate ceiling was reached.
        Aggregate = "aggregate",
        /// Strict: the packet belongs to a flow the host started or answered.
        Flow = "flow",
        /// Strict: a TCP ACK carrying a valid SYN cookie; the kernel makes the connection.
        CookieAck = "cookie_ack",
        /// Strict: TCP or UDP to a port no service of the host and no flow accounts for.
        NoService = "no_service",
        /// Strict: a TCP segment other than SYN with no flow, no socket and no valid cookie.
        NoFlow = "no_flow",
        /// Strict: a SYN to a served port, answered by the program with a SYN cookie (XDP_TX).
        SynCookie = "syn_cookie",
        /// Strict: UDP from an unknown source over its service's budget while under attack.
        UnknownBudget = "unknown_budget",
        EthTruncated = "eth_truncated",
        VlanTruncated = "vlan_truncated",
        /// More than two VLAN tags.
        VlanTooDeep = "vlan_too_deep",
        Ipv4Truncated = "ipv4_truncated",
        Ipv4BadVersion = "ipv4_bad_version",
        /// IHL below 5.
        Ipv4BadIhl = "ipv4_bad_ihl",
        /// Total length below the header or past the end of the frame.
        Ipv4BadLength = "ipv4_bad_length",
        Ipv6Truncated = "ipv6_truncated",
        Ipv6BadVersion = "ipv6_bad_version",
        /// Payload length past the end of the frame.
        Ipv6BadLength = "ipv6_bad_length",
        Ipv6ExtTruncated = "ipv6_ext_truncated",
        /// More extension headers than the parser walks.
        Ipv6ExtTooMany = "ipv6_ext_too_many",
        TcpTruncated = "tcp_truncated",
        /// TCP data offset below 5.
        TcpBadOffset = "tcp_bad_offset",
        UdpTruncated = "udp_truncated",
        /// UDP length below 8 or past the end of the IP payload.
        UdpBadLength = "udp_bad_length",
        IcmpTruncated = "icmp_truncated",
        /// An IPv6 Hop-by-Hop header anywhere but first (RFC 8200, 4.1).
        Ipv6ExtBadOrder = "ipv6_ext_bad_order",
        /// A FlowSpec rule received from a BGP neighbour (discard, or over its rate).
        UpstreamRule = "upstream_rule",
        /// Strict: a SYN to a served port the program could not answer with a cookie (the
        /// kernel's syncookies off, the listener gone, a SYN the helper refuses, no cookie
        /// program). It went on through the per-source limiter, the aggregate ceiling and the
        /// received rules like any packet; passed to the kernel if none objected.
        SynNoCookie = "syn_no_cookie",
        /// A SYN over its source's limit (or from a source serving a SYN penalty), answered with
        /// a SYN cookie instead of dropped: a spoofed address gets a SYN-ACK it ignores, a real
        /// client behind it still connects. Strict need not be engaged.
        PenaltyCookie = "penalty_cookie",
        /// Strict: UDP from a familiar source (one that sent within its limits while calm, see
        /// FAMILIAR), passed before the unknown sources' budget while that applies.
        Familiar = "familiar",
        /// Strict: UDP from an unknown, unfamiliar source that matches a flood signature the
        /// controller mined while its class is under attack (see SIGNATURES).
        FloodSignature = "flood_signature",
        /// A BGP session of Levee's with a configured neighbour (TCP to or from port 179, the
        /// neighbour its source; see BGP_PEERS): passed before every stage, so no rule, received
        /// or Levee's own, can cut the session that carries Levee's rules.
        BgpSession = "bgp_session",
    }
}

impl Reason {
    /// The program passes a packet counted under this reason, in every mode: nothing
    /// objected to it, or a stage vouched for it (every other reason is an objection, whose
    /// action the mode gives: [`Mode::objected`]).
    pub const fn passes(self) -> bool {
        matches!(
            self,
            Reason::Clean
                | Reason::ModeOff
                | Reason::NonIp
                | Reason::Allowlisted
                | Reason::BgpSession
                | Reason::Flow
                | Reason::CookieAck
                | Reason::Familiar
                | Reason::SynNoCookie
        )
    }

    /// What the host knows of the packet's source vouches for it: a flow, a familiar
    /// source, the allowlist, a valid cookie. Its traffic is the crowd's, attack or not (the
    /// flood signatures' miner learns what the crowd sends from it).
    pub const fn known_source(self) -> bool {
        matches!(
            self,
            Reason::Flow | Reason::Familiar | Reason::Allowlisted | Reason::CookieAck
        )
    }

    /// From a source within its own limits that met no rule: what is left of a flood once
    /// the lists, the static signatures and the per-source limiter have had it. Strict's
    /// budget for unknown sources and its cookies come after the limiter, so what they
    /// refuse counts too, and so does what a flood signature drops in their place: detection's
    /// measure of a spread flood does not change when they engage, and the miner learns a
    /// flood's fingerprint from it.
    pub const fn unstopped(self) -> bool {
        matches!(
            self,
            Reason::Clean
                | Reason::UnknownBudget
                | Reason::FloodSignature
                | Reason::SynCookie
                | Reason::SynNoCookie
        )
    }

    /// A frame the parser rejected: it is never passed as something it is not. A list, not
    /// a range: reasons are appended at the end (the counters' layout), malformed or not.
    pub const fn is_malformed(self) -> bool {
        matches!(
            self,
            Reason::EthTruncated
                | Reason::VlanTruncated
                | Reason::VlanTooDeep
                | Reason::Ipv4Truncated
                | Reason::Ipv4BadVersion
                | Reason::Ipv4BadIhl
                | Reason::Ipv4BadLength
                | Reason::Ipv6Truncated
                | Reason::Ipv6BadVersion
                | Reason::Ipv6BadLength
                | Reason::Ipv6ExtTruncated
                | Reason::Ipv6ExtTooMany
                | Reason::TcpTruncated
                | Reason::TcpBadOffset
                | Reason::UdpTruncated
                | Reason::UdpBadLength
                | Reason::IcmpTruncated
                | Reason::Ipv6ExtBadOrder
        )
    }
}

/// Index into COUNTERS for one (action, reason, class) triple.
#[inline(always)]
pub const fn counter_index(action: Action, reason: Reason, class: Class) -> u32 {
    ((action as u32 * Reason::COUNT as u32) + reason as u32) * Class::COUNT as u32 + class as u32
}

/// Number of entries in COUNTERS.
pub const COUNTER_ENTRIES: u32 = (Action::COUNT * Reason::COUNT * Class::COUNT) as u32;

/// One COUNTERS slot, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The action of a packet counted under `reason` in `mode`: the one rule the program and
/// `levee explain` share.
#[inline(always)]
pub const fn action(mode: Mode, reason: Reason) -> Action {
    if reason.passes() {
        Action::Pass
    } else {
        mode.objected()
    }
}
