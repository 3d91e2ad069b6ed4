//! Reading pcap savefiles through the same decoder as live capture.

use std::path::{Path, PathBuf};

use knock_core::PacketEvent;
use pcap::{Capture, Offline};

use crate::clock::instant_from_timeval;
use crate::datagram::Datagram;
use crate::decode::{Ignored, IgnoredCounts, decode_with_payload};
use crate::error::CaptureError;
use crate::link::LinkType;

/// A pcap savefile read packet by packet into [`PacketEvent`]s.
///
/// Each event is stamped with its packet's own capture time: microseconds since the Unix
/// epoch, as a [`knock_core::Instant`]. Iterating yields `Ok(event)` or the reason a frame was
/// ignored; the iteration ends at the end of the file or at a read error (see
/// [`take_error`](Self::take_error)).
pub struct OfflineCapture {
    capture: Capture<Offline>,
    link: LinkType,
    path: PathBuf,
    ignored: IgnoredCounts,
    error: Option<CaptureError>,
    payload_ports: Vec<u16>,
}

/// A frame of a savefile as [`OfflineCapture::next_frame`] decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfflineFrame {
    /// A TCP or UDP packet.
    Packet(PacketEvent),
    /// A UDP datagram to one of the payload ports, with its data.
    Datagram(Datagram),
}

impl OfflineCapture {
    /// Opens a savefile (pcap, or pcapng if libpcap supports it).
    ///
    /// # Errors
    ///
    /// [`CaptureError::File`] if it cannot be opened or is not a capture file,
    /// [`CaptureError::UnsupportedLinkType`] if its link layer is not decoded.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let capture = Capture::from_file(&path).map_err(|source| CaptureError::File {
            path: path.clone(),
            source,
        })?;
        let dlt = capture.get_datalink().0;
        let link = LinkType::from_dlt(dlt).ok_or_else(|| CaptureError::UnsupportedLinkType {
            source_name: path.display().to_string(),
            dlt,
        })?;
        Ok(Self {
            capture,
            link,
            path,
            ignored: IgnoredCounts::default(),
            error: None,
            payload_ports: Vec::new(),
        })
    }

    /// The savefile's link layer.
    #[must_use]
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Applies a BPF filter (for example [`filter_expression`](crate::filter_expression)) so
    /// that only matching packets are read, as live capture would deliver them.
    ///
    /// # Errors
    ///
    /// [`CaptureError::Filter`] if the expression does not compile for this link type.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        self.capture
            .filter(filter, true)
            .map_err(|source| CaptureError::Filter {
                filter: filter.to_owned(),
                source,
            })
    }

    /// Counts of the frames ignored so far, by reason.
    #[must_use]
    pub fn ignored(&self) -> &IgnoredCounts {
        &self.ignored
    }

    /// The read error that ended the iteration early (a truncated or corrupt file), if any.
    pub fn take_error(&mut self) -> Option<CaptureError> {
        self.error.take()
    }

    /// The UDP destination ports whose datagrams [`next_frame`](Self::next_frame) returns
    /// with their data (SPA ports, see [`payload_ports`](crate::payload_ports)).
    pub fn set_payload_ports(&mut self, ports: Vec<u16>) {
        self.payload_ports = ports;
    }

    /// The next frame, decoded like [`next_event`](Self::next_event), datagrams to the
    /// payload ports with their data; `None` at the end of the file or after a read error.
    pub fn next_frame(&mut self) -> Option<Result<OfflineFrame, Ignored>> {
        self.read_frame(|payload_ports, event, data| {
            if event.protocol == knock_core::Protocol::Udp
                && payload_ports.contains(&event.destination_port)
            {
                OfflineFrame::Datagram(Datagram::new(event, data))
            } else {
                OfflineFrame::Packet(event)
            }
        })
    }

    /// The next frame, decoded; `None` at the end of the file or after a read error.
    pub fn next_event(&mut self) -> Option<Result<PacketEvent, Ignored>> {
        self.read_frame(|_, event, _| event)
    }

    /// Reads and decodes the next frame, counting the ignored ones, and gives `make` the
    /// payload ports, the packet and its UDP data; `None` at the end of the file or after a
    /// read error (kept for [`take_error`](Self::take_error)).
    fn read_frame<T>(
        &mut self,
        make: impl FnOnce(&[u16], PacketEvent, &[u8]) -> T,
    ) -> Option<Result<T, Ignored>> {
        if self.error.is_some() {
            return None;
        }
        match self.capture.next_packet() {
            Ok(packet) => {
                let ts = packet.header.ts;
                let timestamp = instant_from_timeval(ts.tv_sec, ts.tv_usec);
                match decode_with_payload(self.link, timestamp, packet.data, packet.header.len) {
                    Ok((event, data)) => Some(Ok(make(&self.payload_ports, event, data))),
                    Err(reason) => {
                        self.ignored.record(reason);
                        Some(Err(reason))
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => None,
            Err(source) => {
                self.error = Some(CaptureError::File {
                    path: self.path.clone(),
                    source,
                });
                None
            }
        }
    }
}

impl Iterator for OfflineCapture {
    type Item = Result<PacketEvent, Ignored>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

impl core::fmt::Debug for OfflineCapture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OfflineCapture")
            .field("path", &self.path)
            .field("link", &self.link)
            .field("ignored", &self.ignored)
            .finish_non_exhaustive()
    }
}
