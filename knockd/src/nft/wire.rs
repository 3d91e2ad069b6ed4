//! The nf_tables netlink messages knockd sends and the replies it reads, as bytes.
//!
//! Pure functions, no socket: the requests are built from `netlink-packet-netfilter`'s
//! message types (this module only chooses which messages make up each request: a batch
//! for changes, a plain request for queries); the few facts knockd needs are read out of
//! the replies by a small decoder of its own that checks every length. The golden-byte tests at the end compare the encoder with what `nft`
//! itself sends for the same operations.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use knock_core::{NftFamily, NftSetRef};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetAttribute, SetElementAttribute,
    SetElementList, SetElementMessage, SetFlags, SetMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

/// `NFNL_SUBSYS_NFTABLES`: the `res_id` of a batch's begin and end messages.
const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// nft's data type number of `ipv4_addr` (`TYPE_IPADDR`), stored in `NFTA_SET_KEY_TYPE`.
pub(crate) const NFT_TYPE_IPV4_ADDR: u32 = 7;
/// nft's data type number of `ipv6_addr` (`TYPE_IP6ADDR`).
pub(crate) const NFT_TYPE_IPV6_ADDR: u32 = 8;

fn proto_family(family: NftFamily) -> NetfilterProtoFamily {
    NetfilterProtoFamily::from(family.nfproto())
}

/// Appends one netlink message to `out`.
fn push(
    out: &mut Vec<u8>,
    family: NetfilterProtoFamily,
    res_id: u16,
    inner: impl Into<NetfilterMessageInner>,
    flags: u16,
    seq: u32,
) {
    let mut message = NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(family, 0, res_id),
        inner,
    ));
    message.header.flags = flags;
    message.header.sequence_number = seq;
    message.finalize();
    let start = out.len();
    out.resize(start + message.buffer_len(), 0);
    message.serialize(&mut out[start..]);
}

fn key_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(addr) => addr.octets().to_vec(),
        IpAddr::V6(addr) => addr.octets().to_vec(),
    }
}

/// Whether a NEWSETELEM also sets the element's expiration (time left) to its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiration {
    /// Timeout only: a new element expires after it (what `nft add element` sends).
    Implicit,
    /// Timeout and expiration (`timeout T expires T`): since Linux 6.12 this also restarts
    /// the countdown of an existing element (a timeout alone does so only when it differs
    /// from the element's current one).
    Explicit,
}

/// The element list of a NEWSETELEM/DELSETELEM message: one element, key `addr`, with a
/// timeout when given (milliseconds, as the kernel wants them) and, when `expiration` is
/// `Explicit`, an expiration equal to it.
fn element_message(
    set: &NftSetRef,
    addr: IpAddr,
    timeout: Option<Duration>,
    expiration: Expiration,
) -> SetElementMessage {
    let mut element = Vec::with_capacity(3);
    if let Some(timeout) = timeout {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        element.push(SetElementAttribute::Timeout(millis));
        if expiration == Expiration::Explicit {
            element.push(SetElementAttribute::Expiration(millis));
        }
    }
    element.push(SetElementAttribute::Key(DataAttribute::Value(key_bytes(
        addr,
    ))));
    SetElementMessage {
        attributes: vec![
            SetElementList::Table(set.table.clone()),
            SetElementList::Set(set.set.clone()),
            SetElementList::Elements(vec![ListAttribute::Element(element)]),
        ],
    }
}

fn batch_begin(out: &mut Vec<u8>, seq: u32) {
    push(
        out,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchBegin,
        NLM_F_REQUEST,
        seq,
    );
}

fn batch_end(out: &mut Vec<u8>, seq: u32) {
    push(
        out,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchEnd,
        NLM_F_REQUEST,
        seq,
    );
}

/// A batch `BEGIN, NEWSETELEM { addr timeout T [expires T] }, END` with sequence numbers
/// `seq..seq+3`, like `nft add element` (`NLM_F_CREATE` without `NLM_F_EXCL`: an existing
/// element is not an error, and since Linux 6.12 it is updated); the NEWSETELEM (number
/// `seq + 1`) asks for an acknowledgement.
pub(crate) fn add_element_batch(
    out: &mut Vec<u8>,
    seq: u32,
    set: &NftSetRef,
    addr: IpAddr,
    timeout: Duration,
    expiration: Expiration,
) {
    batch_begin(out, seq);
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::NewSetElement(element_message(set, addr, Some(timeout), expiration)),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        seq.wrapping_add(1),
    );
    batch_end(out, seq.wrapping_add(2));
}

/// A batch `BEGIN, DELSETELEM { addr }, NEWSETELEM { addr timeout T }, END` with sequence
/// numbers `seq..seq+4`: replaces an existing element atomically (the kernel applies the
/// whole batch or nothing, and packets see either the old or the new element). The two
/// middle messages ask for acknowledgements.
pub(crate) fn replace_element_batch(
    out: &mut Vec<u8>,
    seq: u32,
    set: &NftSetRef,
    addr: IpAddr,
    timeout: Duration,
) {
    batch_begin(out, seq);
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::DeleteSetElement(element_message(set, addr, None, Expiration::Implicit)),
        NLM_F_REQUEST | NLM_F_ACK,
        seq.wrapping_add(1),
    );
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::NewSetElement(element_message(
            set,
            addr,
            Some(timeout),
            Expiration::Implicit,
        )),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        seq.wrapping_add(2),
    );
    batch_end(out, seq.wrapping_add(3));
}

/// A GETSET request for one set, acknowledged (like `nft list set`).
pub(crate) fn get_set_request(out: &mut Vec<u8>, seq: u32, set: &NftSetRef) {
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::GetSet(SetMessage {
            attributes: vec![
                SetAttribute::Table(set.table.clone()),
                SetAttribute::Name(set.set.clone()),
            ],
        }),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
}

/// A GETSETELEM dump of one set's elements (attributes in `nft list set`'s order).
pub(crate) fn get_elements_request(out: &mut Vec<u8>, seq: u32, set: &NftSetRef) {
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Set(set.set.clone()),
                SetElementList::Table(set.table.clone()),
            ],
        }),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    );
}

/// A GETSETELEM request for the one element `addr` (not a dump), acknowledged: the kernel
/// answers with the element, or `ENOENT` when it is not in the set (attributes in `nft get
/// element`'s order).
pub(crate) fn get_element_request(out: &mut Vec<u8>, seq: u32, set: &NftSetRef, addr: IpAddr) {
    let key = SetElementAttribute::Key(DataAttribute::Value(key_bytes(addr)));
    push(
        out,
        proto_family(set.family),
        0,
        NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Set(set.set.clone()),
                SetElementList::Table(set.table.clone()),
                SetElementList::Elements(vec![ListAttribute::Element(vec![key])]),
            ],
        }),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
}

/// What the kernel says about a set (from a NEWSET reply to GETSET).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetInfo {
    /// `NFTA_SET_FLAGS` (`NFT_SET_*` bits: 0x10 is `timeout`).
    pub flags: u32,
    /// `NFTA_SET_KEY_TYPE`: nft's data type number (7 `ipv4_addr`, 8 `ipv6_addr`).
    pub key_type: u32,
    /// `NFTA_SET_KEY_LEN`: bytes per key (4 for IPv4, 16 for IPv6).
    pub key_len: u32,
}

impl SetInfo {
    /// Whether the set has the `timeout` flag.
    #[must_use]
    pub fn has_timeout(&self) -> bool {
        SetFlags::from_bits_retain(self.flags).contains(SetFlags::Timeout)
    }

    /// What kind of set this is when it is not a plain set of single keys: `map`, `interval`,
    /// `concatenation` or `object`; `None` for a plain set.
    #[must_use]
    pub fn special_kind(&self) -> Option<&'static str> {
        let flags = SetFlags::from_bits_retain(self.flags);
        [
            (SetFlags::Map, "map"),
            (SetFlags::Object, "object map"),
            (SetFlags::Interval, "interval"),
            (SetFlags::Concat, "concatenation"),
        ]
        .into_iter()
        .find(|(flag, _)| flags.contains(*flag))
        .map(|(_, kind)| kind)
    }
}

/// One element read back from a set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetElement {
    /// The key: an address when it is 4 or 16 bytes long.
    pub addr: Option<IpAddr>,
    /// The element's timeout, if it has one.
    pub timeout: Option<Duration>,
    /// The time left before the element expires, if it has a timeout.
    pub expiration: Option<Duration>,
}

/// One decoded reply message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// An acknowledgement (`NLMSG_ERROR` with code 0).
    Ack { seq: u32 },
    /// An error: `errno` is positive (`ENOENT`, `EPERM`, …).
    Error { seq: u32, errno: i32 },
    /// The end of a dump.
    Done { seq: u32 },
    /// A set's description.
    Set { seq: u32, info: SetInfo },
    /// Elements of a set (one NEWSETELEM message may carry several).
    Elements { seq: u32, elements: Vec<SetElement> },
    /// Anything else (ignored).
    Other { seq: u32 },
}

impl Reply {
    /// The sequence number of the request this replies to.
    pub(crate) fn seq(&self) -> u32 {
        match *self {
            Self::Ack { seq }
            | Self::Error { seq, .. }
            | Self::Done { seq }
            | Self::Set { seq, .. }
            | Self::Elements { seq, .. }
            | Self::Other { seq } => seq,
        }
    }
}

// Reply decoding is done here rather than by `netlink-packet-netfilter`: its parsers
// trust inner attribute lengths (a nested attribute shorter than its header makes
// `netlink-packet-core` 0.9 subtract with overflow, found by `mutated_replies_never_panic`),
// and knockd needs only a few attributes. Every length is checked; nothing here panics.

/// `NLMSG_ERROR` (an error or, with code 0, an acknowledgement).
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSET`.
const NFT_NEWSET: u16 = NFNL_SUBSYS_NFTABLES << 8 | 9;
/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM`.
const NFT_NEWSETELEM: u16 = NFNL_SUBSYS_NFTABLES << 8 | 12;
/// The netlink header and the nfgenmsg header that starts every nf_tables payload.
const NLMSG_HEADER_LEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
// Attribute numbers (include/uapi/linux/netfilter/nf_tables.h).
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;
/// The attribute type bits (without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

fn ne_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.try_into().ok()?))
}

fn be_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// The attributes in `bytes` as `(type, value)` pairs, each length checked.
fn attributes(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(ne_u16(bytes, 0).unwrap_or_default());
        let kind = ne_u16(bytes, 2).unwrap_or_default() & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            return Err(format!(
                "attribute {kind} of length {len} with {} bytes left",
                bytes.len()
            ));
        }
        out.push((kind, &bytes[4..len]));
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(out)
}

fn set_info(payload: &[u8]) -> Result<SetInfo, String> {
    let mut info = SetInfo::default();
    for (kind, value) in attributes(payload)? {
        let target = match kind {
            NFTA_SET_FLAGS => &mut info.flags,
            NFTA_SET_KEY_TYPE => &mut info.key_type,
            NFTA_SET_KEY_LEN => &mut info.key_len,
            _ => continue,
        };
        *target = be_u32(value).ok_or_else(|| format!("set attribute {kind} is not 4 bytes"))?;
    }
    Ok(info)
}

fn elements(payload: &[u8]) -> Result<Vec<SetElement>, String> {
    let mut out = Vec::new();
    for (kind, list) in attributes(payload)? {
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (kind, item) in attributes(list)? {
            if kind != NFTA_LIST_ELEM {
                continue;
            }
            let mut element = SetElement {
                addr: None,
                timeout: None,
                expiration: None,
            };
            for (kind, value) in attributes(item)? {
                match kind {
                    NFTA_SET_ELEM_KEY => {
                        for (kind, data) in attributes(value)? {
                            if kind == NFTA_DATA_VALUE {
                                element.addr = address(data);
                            }
                        }
                    }
                    NFTA_SET_ELEM_TIMEOUT => {
                        element.timeout = be_u64(value).map(Duration::from_millis);
                    }
                    NFTA_SET_ELEM_EXPIRATION => {
                        element.expiration = be_u64(value).map(Duration::from_millis);
                    }
                    _ => {}
                }
            }
            out.push(element);
        }
    }
    Ok(out)
}

fn address(key: &[u8]) -> Option<IpAddr> {
    if let Ok(octets) = <[u8; 4]>::try_from(key) {
        Some(IpAddr::V4(Ipv4Addr::from(octets)))
    } else if let Ok(octets) = <[u8; 16]>::try_from(key) {
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    } else {
        None
    }
}

/// Decodes every netlink message in one datagram from the kernel.
///
/// # Errors
///
/// A description of the first message that does not decode.
pub(crate) fn parse_replies(mut datagram: &[u8]) -> Result<Vec<Reply>, String> {
    let mut replies = Vec::new();
    while !datagram.is_empty() {
        let (Some(len), Some(kind), Some(seq)) = (
            ne_u32(datagram, 0),
            ne_u16(datagram, 4),
            ne_u32(datagram, 8),
        ) else {
            return Err(format!("{} bytes left, less than a header", datagram.len()));
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < NLMSG_HEADER_LEN || len > datagram.len() {
            return Err(format!(
                "message of length {len} with {} bytes left",
                datagram.len()
            ));
        }
        let payload = &datagram[NLMSG_HEADER_LEN..len];
        let nft_payload = || {
            payload
                .get(NFGENMSG_LEN..)
                .ok_or_else(|| format!("nf_tables message of length {len}"))
        };
        replies.push(match kind {
            NLMSG_ERROR => {
                let code = ne_u32(payload, 0).ok_or("truncated error message")?;
                // The code is a negative errno, as an i32 in host order.
                match i32::from_ne_bytes(code.to_ne_bytes()) {
                    0 => Reply::Ack { seq },
                    code => Reply::Error {
                        seq,
                        errno: code.saturating_abs(),
                    },
                }
            }
            NLMSG_DONE => Reply::Done { seq },
            NFT_NEWSET => Reply::Set {
                seq,
                info: set_info(nft_payload()?)?,
            },
            NFT_NEWSETELEM => Reply::Elements {
                seq,
                elements: elements(nft_payload()?)?,
            },
            _ => Reply::Other { seq },
        });
        // Messages are aligned to 4 bytes; the last one may end the datagram unpadded.
        datagram = datagram.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    //! Golden bytes: what `nft` 1.0.6 (Debian 12) sends on Linux 6.18, recorded with
    //!
    //! ```text
    //! ip netns exec NS strace -e trace=sendmsg,sendto -e write=3 \
    //!     nft add element inet knockd ssh4 '{ 10.1.2.3 timeout 30s }'
    //! ```
    //!
    //! (`-e read=3` as well for the kernel's replies)
    //!
    //! (and likewise for the other commands named on each test) in a namespace holding
    //! `table inet knockd { set ssh4 { type ipv4_addr; flags timeout; } … }` and
    //! `table ip6 k6 { set s6 { type ipv6_addr; flags timeout; } }`. There is no `nlmon`
    //! device on the test machine, hence strace's dump of the socket writes. Differences
    //! that are choices, not mistakes, are undone on nft's bytes before comparing, each
    //! named where it happens: sequence numbers (nft's batch starts at 0, ours wherever the
    //! socket's counter is), nft's `NFTA_SET_ELEM_LIST_SET_ID` (only meaningful for a set
    //! created in the same batch), knockd's `NLM_F_ACK` (so that success is reported, not
    //! just failure), and padding bytes nft leaves uninitialised (written as 00 here).

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Splits a datagram into its messages.
    fn messages(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize;
            out.push(bytes[..len].to_vec());
            bytes = &bytes[len.next_multiple_of(4)..];
        }
        out
    }

    fn set_flags(message: &mut [u8], flags: u16) {
        message[6..8].copy_from_slice(&flags.to_ne_bytes());
    }

    fn set_seq(message: &mut [u8], seq: u32) {
        message[8..12].copy_from_slice(&seq.to_ne_bytes());
    }

    /// Removes the 8-byte attribute at `offset` (nft's SET_ID) and fixes the length.
    fn cut_attribute(message: &mut Vec<u8>, offset: usize) {
        assert_eq!(
            &message[offset..offset + 4],
            &[8, 0, 4, 0],
            "SET_ID attribute"
        );
        message.drain(offset..offset + 8);
        let len = u32::try_from(message.len()).unwrap();
        message[..4].copy_from_slice(&len.to_ne_bytes());
    }

    fn ssh4() -> NftSetRef {
        NftSetRef::new(NftFamily::Inet, "knockd", "ssh4")
    }

    // nft add element inet knockd ssh4 '{ 10.1.2.3 timeout 30s }'
    const NFT_ADD_V4: &str = "
        14 00 00 00 10 00 01 00  00 00 00 00 00 00 00 00
        00 00 00 0a 54 00 00 00  0c 0a 01 04 01 00 00 00
        00 00 00 00 01 00 00 00  0b 00 01 00 6b 6e 6f 63
        6b 64 00 00 09 00 02 00  73 73 68 34 00 00 00 00
        08 00 04 00 00 00 00 01  20 00 03 80 1c 00 01 80
        0c 00 04 00 00 00 00 00  00 00 75 30 0c 00 01 80
        08 00 01 00 0a 01 02 03  14 00 00 00 11 00 01 00
        02 00 00 00 00 00 00 00  00 00 00 0a";

    // nft add element ip6 k6 s6 '{ fd00::1:2:3 timeout 1h }'
    const NFT_ADD_V6: &str = "
        14 00 00 00 10 00 01 00  00 00 00 00 00 00 00 00
        00 00 00 0a 58 00 00 00  0c 0a 01 04 01 00 00 00
        00 00 00 00 0a 00 00 00  07 00 01 00 6b 36 00 00
        07 00 02 00 73 36 00 00  08 00 04 00 00 00 00 03
        2c 00 03 80 28 00 01 80  0c 00 04 00 00 00 00 00
        00 36 ee 80 18 00 01 80  14 00 01 00 fd 00 00 00
        00 00 00 00 00 00 00 01  00 02 00 03 14 00 00 00
        11 00 01 00 02 00 00 00  00 00 00 00 00 00 00 0a";

    /// Compares our add batch (sequence numbers from `seq`) with nft's, message by message.
    fn assert_add_matches_nft(nft: &str, ours: &[u8], seq: u32) {
        let nft = messages(&hex(nft));
        let ours = messages(ours);
        assert_eq!(nft.len(), 3, "nft: begin, NEWSETELEM, end");
        assert_eq!(ours.len(), 3, "ours: begin, NEWSETELEM, end");
        for (i, (mut theirs, mine)) in nft.into_iter().zip(ours).enumerate() {
            set_seq(&mut theirs, seq + u32::try_from(i).unwrap());
            if i == 1 {
                // nft: NLM_F_REQUEST | NLM_F_CREATE; knockd adds NLM_F_ACK.
                set_flags(&mut theirs, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
                // Attributes start after the header (16) and nfgenmsg (4): table, set, SET_ID.
                let attr_len =
                    |at: usize| usize::from(u16::from_ne_bytes([theirs[at], theirs[at + 1]]));
                let set_at = 20 + attr_len(20).next_multiple_of(4);
                let id_at = set_at + attr_len(set_at).next_multiple_of(4);
                cut_attribute(&mut theirs, id_at);
            }
            assert_eq!(mine, theirs, "message {i}");
        }
    }

    #[test]
    fn add_v4_element_in_inet_set_matches_nft() {
        let mut ours = Vec::new();
        let addr = "10.1.2.3".parse().unwrap();
        add_element_batch(
            &mut ours,
            7,
            &ssh4(),
            addr,
            Duration::from_secs(30),
            Expiration::Implicit,
        );
        assert_add_matches_nft(NFT_ADD_V4, &ours, 7);
    }

    #[test]
    fn add_v6_element_in_ip6_set_matches_nft() {
        let mut ours = Vec::new();
        let set = NftSetRef::new(NftFamily::Ip6, "k6", "s6");
        let addr = "fd00::1:2:3".parse().unwrap();
        add_element_batch(
            &mut ours,
            1000,
            &set,
            addr,
            Duration::from_secs(3600),
            Expiration::Implicit,
        );
        assert_add_matches_nft(NFT_ADD_V6, &ours, 1000);
    }

    // nft add element inet knockd ssh4 '{ 10.1.2.3 timeout 30s expires 30s }'
    const NFT_ADD_V4_EXPIRES: &str = "
        14 00 00 00 10 00 01 00  00 00 00 00 00 00 00 00
        00 00 00 0a 60 00 00 00  0c 0a 01 04 01 00 00 00
        00 00 00 00 01 00 00 00  0b 00 01 00 6b 6e 6f 63
        6b 64 00 00 09 00 02 00  73 73 68 34 00 00 00 00
        08 00 04 00 00 00 00 01  2c 00 03 80 28 00 01 80
        0c 00 04 00 00 00 00 00  00 00 75 30 0c 00 05 00
        00 00 00 00 00 00 75 30  0c 00 01 80 08 00 01 00
        0a 01 02 03 14 00 00 00  11 00 01 00 02 00 00 00
        00 00 00 00 00 00 00 0a";

    #[test]
    fn add_with_explicit_expiration_matches_nft() {
        let mut ours = Vec::new();
        let addr = "10.1.2.3".parse().unwrap();
        add_element_batch(
            &mut ours,
            3,
            &ssh4(),
            addr,
            Duration::from_secs(30),
            Expiration::Explicit,
        );
        assert_add_matches_nft(NFT_ADD_V4_EXPIRES, &ours, 3);
    }

    #[test]
    fn replace_batch_deletes_then_adds_in_one_batch() {
        let mut out = Vec::new();
        let addr: IpAddr = "10.1.2.3".parse().unwrap();
        replace_element_batch(&mut out, 40, &ssh4(), addr, Duration::from_millis(1500));
        let parts = messages(&out);
        assert_eq!(parts.len(), 4);
        let kind = |m: &[u8]| u16::from_ne_bytes([m[4], m[5]]);
        let flags = |m: &[u8]| u16::from_ne_bytes([m[6], m[7]]);
        let seq = |m: &[u8]| u32::from_ne_bytes(m[8..12].try_into().unwrap());
        assert_eq!(
            parts.iter().map(|m| kind(m)).collect::<Vec<_>>(),
            [0x10, 0x0a0e, 0x0a0c, 0x11],
            "begin, DELSETELEM, NEWSETELEM, end"
        );
        assert_eq!(
            parts.iter().map(|m| seq(m)).collect::<Vec<_>>(),
            [40, 41, 42, 43]
        );
        assert_eq!(flags(&parts[1]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(flags(&parts[2]), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        // The delete carries the key only; the add carries the timeout, 1500 ms.
        assert!(!parts[1].windows(8).any(|w| w == 1500u64.to_be_bytes()));
        assert!(parts[2].windows(8).any(|w| w == 1500u64.to_be_bytes()));
        assert!(parts[1].ends_with(&[10, 1, 2, 3]) && parts[2].ends_with(&[10, 1, 2, 3]));
    }

    // nft list set inet knockd ssh4: the GETSET request (padding zeroed)
    const NFT_GET_SET: &str = "
        2c 00 00 00 0a 0a 05 00  00 00 00 00 00 00 00 00
        01 00 00 00 0b 00 01 00  6b 6e 6f 63 6b 64 00 00
        09 00 02 00 73 73 68 34  00 00 00 00";

    // nft list set inet knockd ssh4: the GETSETELEM dump request (padding zeroed)
    const NFT_GET_ELEMENTS: &str = "
        2c 00 00 00 0d 0a 01 03  00 00 00 00 00 00 00 00
        01 00 00 00 09 00 02 00  73 73 68 34 00 00 00 00
        0b 00 01 00 6b 6e 6f 63  6b 64 00 00";

    // nft get element inet knockd ssh4 '{ 10.1.2.3 }': the GETSETELEM request (padding
    // zeroed; nft numbered it 1)
    const NFT_GET_ELEMENT: &str = "
        40 00 00 00 0d 0a 05 00  01 00 00 00 00 00 00 00
        01 00 00 00 09 00 02 00  73 73 68 34 00 00 00 00
        0b 00 01 00 6b 6e 6f 63  6b 64 00 00 14 00 03 80
        10 00 01 80 0c 00 01 80  08 00 01 00 0a 01 02 03";

    #[test]
    fn queries_match_nft() {
        let mut element = Vec::new();
        get_element_request(&mut element, 1, &ssh4(), "10.1.2.3".parse().unwrap());
        assert_eq!(element, hex(NFT_GET_ELEMENT));

        let mut ours = Vec::new();
        get_set_request(&mut ours, 0, &ssh4());
        assert_eq!(ours, hex(NFT_GET_SET));
        ours.clear();
        get_elements_request(&mut ours, 0, &ssh4());
        assert_eq!(ours, hex(NFT_GET_ELEMENTS));
    }

    // The kernel's replies to nft list set inet knockd ssh4 (port id 0x387e): the set, its
    // acknowledgement, one element (10.1.2.3, timeout 30000 ms, expires in 29948 ms), an
    // empty element message, and the end of the dump.
    const KERNEL_NEWSET: &str = "
        80 00 00 00 09 0a 00 00  00 00 00 00 7e 38 00 00
        01 00 00 04 0b 00 01 00  6b 6e 6f 63 6b 64 00 00
        09 00 02 00 73 73 68 34  00 00 00 00 0c 00 10 00
        00 00 00 00 00 00 00 01  08 00 03 00 00 00 00 10
        08 00 04 00 00 00 00 07  08 00 05 00 00 00 00 04
        0a 00 0d 00 00 04 02 00  00 00 00 00 04 00 09 00
        17 00 13 00 30 78 66 66  66 66 66 66 66 66 38 32
        35 30 37 66 34 30 00 00  08 00 14 00 00 00 00 01";
    const KERNEL_ACK: &str = "
        24 00 00 00 02 00 00 01  00 00 00 00 7e 38 00 00
        00 00 00 00 2c 00 00 00  0a 0a 05 00 00 00 00 00
        00 00 00 00";
    const KERNEL_ELEMENTS: &str = "
        58 00 00 00 0c 0a 02 00  00 00 00 00 7e 38 00 00
        01 00 00 04 0b 00 01 00  6b 6e 6f 63 6b 64 00 00
        09 00 02 00 73 73 68 34  00 00 00 00 2c 00 03 00
        28 00 01 00 0c 00 01 00  08 00 01 00 0a 01 02 03
        0c 00 04 00 00 00 00 00  00 00 75 30 0c 00 05 00
        00 00 00 00 00 00 74 fc";
    const KERNEL_EMPTY_AND_DONE: &str = "
        30 00 00 00 0c 0a 02 00  00 00 00 00 7e 38 00 00
        01 00 00 04 0b 00 01 00  6b 6e 6f 63 6b 64 00 00
        09 00 02 00 73 73 68 34  00 00 00 00 04 00 03 00
        14 00 00 00 03 00 02 00  00 00 00 00 7e 38 00 00
        00 00 00 00";

    #[test]
    fn decodes_the_kernels_replies() {
        let info = SetInfo {
            flags: 0x10,
            key_type: NFT_TYPE_IPV4_ADDR,
            key_len: 4,
        };
        assert!(info.has_timeout());
        assert_eq!(info.special_kind(), None);
        assert_eq!(
            parse_replies(&hex(KERNEL_NEWSET)).unwrap(),
            [Reply::Set { seq: 0, info }]
        );
        assert_eq!(
            parse_replies(&hex(KERNEL_ACK)).unwrap(),
            [Reply::Ack { seq: 0 }]
        );
        assert_eq!(
            parse_replies(&hex(KERNEL_ELEMENTS)).unwrap(),
            [Reply::Elements {
                seq: 0,
                elements: vec![SetElement {
                    addr: Some("10.1.2.3".parse().unwrap()),
                    timeout: Some(Duration::from_secs(30)),
                    expiration: Some(Duration::from_millis(29948)),
                }]
            }]
        );
        assert_eq!(
            parse_replies(&hex(KERNEL_EMPTY_AND_DONE)).unwrap(),
            [
                Reply::Elements {
                    seq: 0,
                    elements: vec![]
                },
                Reply::Done { seq: 0 }
            ]
        );
    }

    #[test]
    fn decodes_errors_and_rejects_garbage() {
        // NLMSG_ERROR, error -2 (ENOENT) for request 5.
        let mut error = hex(KERNEL_ACK);
        error[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        error[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(
            parse_replies(&error).unwrap(),
            [Reply::Error { seq: 5, errno: 2 }]
        );
        // Truncated messages and lengths past the end are errors, never panics.
        let full = hex(KERNEL_ELEMENTS);
        for cut in 1..full.len() {
            let _ = parse_replies(&full[..cut]);
        }
        assert!(parse_replies(&full[..30]).is_err());
        let mut long = full.clone();
        long[0] = 0xff;
        assert!(parse_replies(&long).is_err());
    }

    #[test]
    fn mutated_replies_never_panic() {
        // Every single-byte change (three values per position) of every recorded reply, and
        // every prefix: decode or fail, never panic. The kernel is trusted, but a decoder
        // bug must not take the daemon down.
        for reply in [
            KERNEL_NEWSET,
            KERNEL_ACK,
            KERNEL_ELEMENTS,
            KERNEL_EMPTY_AND_DONE,
        ] {
            let original = hex(reply);
            for at in 0..original.len() {
                for value in [0x00, 0xff, original[at] ^ 0x80] {
                    let mut bytes = original.clone();
                    bytes[at] = value;
                    let _ = parse_replies(&bytes);
                }
                let _ = parse_replies(&original[..at]);
            }
        }
    }

    #[test]
    fn special_kinds() {
        let kind = |flags| {
            SetInfo {
                flags,
                ..SetInfo::default()
            }
            .special_kind()
        };
        assert_eq!(kind(0x10), None);
        assert_eq!(kind(0x18), Some("map"));
        assert_eq!(kind(0x14), Some("interval"));
        assert_eq!(kind(0x90), Some("concatenation"));
        assert!(!SetInfo::default().has_timeout());
    }
}
