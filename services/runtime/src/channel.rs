//! Channels to other services.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// HTTP/2 frame and window sizes of the mesh, on both ends of every call ([`crate::server`]
/// too). Sync's calls carry pages of records: a 500-record page of partner payloads is about
/// 2.5 MB each way. At HTTP/2's default 16 KiB frames and hyper's 1 MiB server windows that is
/// some 150 frames and several window updates per message; frames as large as the receiver
/// allows and windows that hold a page make it a few. Small calls are unchanged.
pub(crate) const MAX_FRAME_BYTES: u32 = 1024 * 1024;
pub(crate) const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
pub(crate) const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// A channel to `addr` (`host:port`) that connects on first use and reconnects by itself, so a
/// service can start before the services it calls.
pub fn lazy_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .max_frame_size(MAX_FRAME_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .connect_lazy())
}
