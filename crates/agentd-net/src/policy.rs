//! Which addresses a user-supplied URL may reach.
//!
//! By default only globally routable unicast addresses: loopback, private
//! (RFC 1918), shared (CGNAT), link-local (cloud metadata at
//! 169.254.169.254 included), unique-local, multicast, unspecified,
//! broadcast, documentation and reserved ranges are refused, and so are the
//! IPv6 spellings that embed such an IPv4 address (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4). An operator may allow everything or some
//! networks (`AGENTD_ALLOW_PRIVATE_URLS`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

/// The addresses outbound fetches may connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Only globally routable addresses (the default).
    #[default]
    PublicOnly,
    /// Public addresses and these networks.
    AllowListed(Vec<IpNet>),
    /// Every address (tests, intranets).
    AllowAll,
}

/// Why a URL or an address was refused. Only logged: callers show one
/// generic text for every refusal (see [`crate::Unreachable`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid URL")]
    Malformed,
    #[error("scheme '{0}' is not http or https")]
    Scheme(String),
    #[error("the URL names no host")]
    NoHost,
    #[error("address {0} is not allowed")]
    Address(IpAddr),
    #[error("none of the addresses of '{0}' is allowed")]
    NoAllowedAddress(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        match self {
            Self::AllowAll => true,
            Self::PublicOnly => is_public(ip),
            Self::AllowListed(networks) => {
                let unwrapped = unwrap_ipv4(ip);
                is_public(ip)
                    || networks
                        .iter()
                        .any(|net| net.contains(&ip) || net.contains(&unwrapped))
            }
        }
    }

    /// Parses `text` as a URL and checks what can be checked before any
    /// connection: the scheme, and the host when it is an IP literal (a
    /// client never resolves those, so no resolver would see them). Hosts
    /// given by name are checked when they are resolved.
    pub fn check_url(&self, text: &str) -> Result<Url, Refusal> {
        let url = Url::parse(text.trim()).map_err(|_| Refusal::Malformed)?;
        self.check_parsed(&url)?;
        Ok(url)
    }

    /// [`Self::check_url`] for a URL already parsed (a redirect target).
    pub fn check_parsed(&self, url: &Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_owned()));
        }
        let ip = match url.host().ok_or(Refusal::NoHost)? {
            Host::Domain("") => return Err(Refusal::NoHost),
            Host::Domain(_) => return Ok(()),
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Refusal::Address(ip))
        }
    }
}

/// `AGENTD_ALLOW_PRIVATE_URLS`: `true`/`false` (also `1`/`0`, `yes`/`no`,
/// `on`/`off`, empty for false) or a comma-separated list of networks in
/// CIDR notation; a bare address stands for itself alone.
impl FromStr for AddressPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => return Ok(Self::AllowAll),
            "false" | "0" | "no" | "off" | "" => return Ok(Self::PublicOnly),
            _ => {}
        }
        let networks = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "'{item}' is neither true/false nor a network in CIDR notation \
                             (such as 10.0.0.0/8 or fd00::/8)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::AllowListed(networks))
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => ipv4_is_public(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => ipv4_is_public(v4),
            None => ipv6_is_public(v6),
        },
    }
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms
/// that carry one; otherwise `ip` unchanged.
fn unwrap_ipv4(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// IPv4 networks that are not globally reachable (IANA special-purpose
/// registry), as (address, prefix length).
const NON_PUBLIC_V4: [([u8; 4], u32); 15] = [
    ([0, 0, 0, 0], 8),       // "this network", 0.0.0.0 included
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, 255.255.255.255 broadcast included
];

fn ipv4_is_public(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !NON_PUBLIC_V4.iter().any(|&(network, prefix)| {
        let mask = u32::MAX << (32 - prefix);
        bits & mask == u32::from(Ipv4Addr::from(network))
    })
}

/// Whether `bits` lies in `network/prefix`.
fn in_v6(bits: u128, network: u128, prefix: u32) -> bool {
    let mask = u128::MAX << (128 - prefix);
    bits & mask == network
}

/// Only 2000::/3 is allocated as global unicast; within it these are not
/// globally reachable.
const NON_PUBLIC_GLOBAL_V6: [(u128, u32); 3] = [
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments, Teredo
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
];

fn ipv6_is_public(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    in_v6(bits, 0x2000 << 112, 3)
        && !NON_PUBLIC_GLOBAL_V6
            .iter()
            .any(|&(network, prefix)| in_v6(bits, network, prefix))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, `::` and `::1` included), NAT64
/// (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`) address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if in_v6(bits, 0xffff << 32, 96) || in_v6(bits, 0, 96) {
        return Some(low32);
    }
    if in_v6(bits, 0x0064_ff9b << 96, 96) {
        return Some(low32);
    }
    if in_v6(bits, 0x2002 << 112, 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn refuses_every_non_public_ipv4_range() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must be refused");
        }
    }

    #[test]
    fn allows_public_ipv4_including_the_neighbours_of_private_ranges() {
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.167.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(is_public(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn refuses_non_public_ipv6_and_ipv6_forms_of_private_ipv4() {
        for refused in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "100::1",
            "64:ff9b:1::1",
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:0101:1::1",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must be refused");
        }
    }

    #[test]
    fn allows_global_ipv6_and_ipv6_forms_of_public_ipv4() {
        for allowed in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn parses_the_allow_setting() {
        assert_eq!("true".parse(), Ok(AddressPolicy::AllowAll));
        assert_eq!(" TRUE ".parse(), Ok(AddressPolicy::AllowAll));
        assert_eq!("1".parse(), Ok(AddressPolicy::AllowAll));
        assert_eq!("false".parse(), Ok(AddressPolicy::PublicOnly));
        assert_eq!("".parse(), Ok(AddressPolicy::PublicOnly));
        assert_eq!(
            "10.1.2.3/8, 127.0.0.2,fd00::/8".parse(),
            Ok(AddressPolicy::AllowListed(vec![
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.2/32".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ]))
        );
        let error = "10.0.0.0/8,intranet".parse::<AddressPolicy>().unwrap_err();
        assert!(error.contains("'intranet'"), "{error}");
        assert!("10.0.0.0/33".parse::<AddressPolicy>().is_err());
    }

    #[test]
    fn an_allow_list_admits_its_networks_and_public_addresses_only() {
        let policy: AddressPolicy = "127.0.0.2/32,10.0.0.0/8".parse().unwrap();
        assert!(policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("::ffff:127.0.0.2")));
        assert!(policy.permits(ip("10.9.8.7")));
        assert!(policy.permits(ip("8.8.8.8")));
        assert!(!policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("::1")));
        assert!(!policy.permits(ip("192.168.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(AddressPolicy::AllowAll.permits(ip("127.0.0.1")));
        assert!(!AddressPolicy::PublicOnly.permits(ip("127.0.0.1")));
    }

    #[test]
    fn every_spelling_of_loopback_in_a_url_is_refused_before_connecting() {
        let policy = AddressPolicy::PublicOnly;
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://127.0.0.1./",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://user:pass@127.0.0.1/",
            "http://user@127.0.0.1:8080/path",
            "https://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://10.0.0.1/",
            "http://100.64.0.1/",
            " http://127.0.0.1/ ",
            "http://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}/",
        ] {
            assert!(
                matches!(policy.check_url(url), Err(Refusal::Address(_))),
                "{url} must be refused: {:?}",
                policy.check_url(url)
            );
        }
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_pass() {
        let policy = AddressPolicy::AllowAll;
        assert!(policy.check_url("http://example.com/a.png").is_ok());
        assert!(policy.check_url("https://8.8.8.8/").is_ok());
        assert!(policy.check_url("HTTPS://EXAMPLE.COM/").is_ok());
        for (url, refusal) in [
            ("file:///etc/passwd", Refusal::Scheme("file".into())),
            ("gopher://127.0.0.1:6379/", Refusal::Scheme("gopher".into())),
            ("ftp://example.com/", Refusal::Scheme("ftp".into())),
            ("not a url", Refusal::Malformed),
            ("http://", Refusal::Malformed),
        ] {
            assert_eq!(policy.check_url(url), Err(refusal), "{url}");
        }
    }

    #[test]
    fn names_pass_the_url_check_and_wait_for_resolution() {
        let policy = AddressPolicy::PublicOnly;
        assert!(policy.check_url("http://localhost:8080/").is_ok());
        assert!(policy.check_url("http://example.com/").is_ok());
    }
}
