//! knock-capture: packets from libpcap into `knock_core::PacketEvent`s. PLACEHOLDER.

#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]
