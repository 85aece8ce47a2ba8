//! What only the tests need of the simulator: misbehaving replies, other loopback
//! addresses, HTTPS, and the log of requests received.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::{Fault, Recorded, Reply, Server};

impl Reply {
    pub fn drop_connection() -> Self {
        Reply {
            fault: Fault::Drop,
            ..Reply::status(200)
        }
    }

    /// `chunk` repeated without end.
    pub fn endless(chunk: impl Into<Bytes>) -> Self {
        Reply {
            fault: Fault::Endless,
            ..Reply::status(200).body(chunk)
        }
    }

    /// Sends only the first `bytes` of the body, after announcing all of it.
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.fault = Fault::Cut(bytes);
        self
    }

    /// Waits before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A certificate chain and its private key, for a server that speaks HTTPS.
pub struct ServerCert {
    /// DER certificates, the server's own first.
    pub chain: Vec<Vec<u8>>,
    /// The private key, PKCS#8 DER.
    pub key: Vec<u8>,
}

impl Server {
    /// Starts on a given loopback address (e.g. 127.0.0.2, to play another host).
    pub fn start_on(
        ip: IpAddr,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Server> {
        Server::launch(ip, None, Arc::new(handler))
    }

    /// Starts on 127.0.0.1, speaking HTTPS with `identity`.
    pub fn start_tls(
        identity: ServerCert,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Server> {
        let chain = identity
            .chain
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = PrivatePkcs8KeyDer::from(identity.key).into();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(io::Error::other)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Server::launch(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(acceptor),
            Arc::new(handler),
        )
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request body as JSON (`null` when there is none or it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}
