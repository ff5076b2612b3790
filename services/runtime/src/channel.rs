//! Channels to other services.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

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
        .connect_lazy())
}
