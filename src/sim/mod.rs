//! A simulated paginated API on loopback that misbehaves on request.
//!
//! It serves `--demo` and the test suite. Each server runs on its own thread and runtime,
//! answers every request through a handler closure that scripts the reply (a status, a
//! `Retry-After`, a dropped connection, a body cut short, an endless body, a slow answer),
//! and records every request so tests can assert on what apifetch actually sent. It speaks
//! HTTP, or (for the tests, with the `testing` feature) HTTPS with a certificate the
//! caller provides.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

mod demo;
#[cfg(feature = "testing")]
mod faults;

pub use demo::{DEMO_RECORDS, demo};
#[cfg(feature = "testing")]
pub use faults::ServerCert;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// 0 for the first request the server saw, 1 for the next, ...
    pub n: usize,
    /// When the request arrived.
    pub at: Instant,
    /// When the reply was handed to the connection (`None` until then). The client cannot
    /// have seen the reply earlier, so a wait it starts on the reply is measured from here,
    /// free of the lag between a client sending and the server noticing.
    pub answered: Option<Instant>,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// The request body, for APIs paged through it (POST searches, GraphQL).
    pub body: Bytes,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a reply misbehaves; only the tests ask for more than `None` (see [`faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Close the connection without answering.
    #[cfg(feature = "testing")]
    Drop,
    /// Announce the whole body, send this many bytes, then break the connection.
    #[cfg(feature = "testing")]
    Cut(usize),
    /// Stream the body forever.
    #[cfg(feature = "testing")]
    Endless,
}

/// The TLS side of a server: only the tests' HTTPS servers have one.
#[cfg(feature = "testing")]
type Acceptor = tokio_rustls::TlsAcceptor;
/// Without the `testing` feature no server speaks TLS: a type with no values.
#[cfg(not(feature = "testing"))]
#[derive(Clone)]
enum Acceptor {}

/// The scripted answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    fault: Fault,
    delay: Duration,
}

impl Reply {
    pub fn json(value: &Value) -> Self {
        Reply::status(200)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            fault: Fault::None,
            delay: Duration::ZERO,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A running simulated API. Stops when dropped.
pub struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    /// Every request received, for the tests to read.
    #[cfg(feature = "testing")]
    log: Arc<Mutex<Vec<Recorded>>>,
    _stop: oneshot::Sender<()>,
}

impl Server {
    /// Starts on 127.0.0.1 at a free port.
    pub fn start(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Server> {
        Server::launch(IpAddr::V4(Ipv4Addr::LOCALHOST), None, Arc::new(handler))
    }

    fn launch(ip: IpAddr, tls: Option<Acceptor>, handler: Arc<Handler>) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_log = Arc::clone(&log);
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::Builder::new()
            .name(format!("sim-{addr}"))
            .spawn(move || runtime.block_on(serve(listener, tls, handler, thread_log, stopped)))?;
        Ok(Server {
            addr,
            scheme,
            #[cfg(feature = "testing")]
            log,
            _stop: stop,
        })
    }

    /// `http://ADDR` (or `https://`) followed by `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path_and_query)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Acceptor>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Recorded>>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let handler = Arc::clone(&handler);
        let log = Arc::clone(&log);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                // A failed handshake (a client that does not trust us) is no request.
                #[cfg(feature = "testing")]
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve_connection(stream, handler, log).await;
                    }
                }
                #[cfg(not(feature = "testing"))]
                Some(never) => match never {},
                None => serve_connection(stream, handler, log).await,
            }
        });
    }
}

async fn serve_connection(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Recorded>>>,
) {
    let service = service_fn(move |req| respond(req, Arc::clone(&handler), Arc::clone(&log)));
    // A dropped or cut connection ends here with an error, which is the point.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn respond(
    req: hyper::Request<hyper::body::Incoming>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Recorded>>>,
) -> Result<hyper::Response<SimBody>, io::Error> {
    let at = Instant::now();
    let (head, body) = req.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = {
        let mut log = log.lock().unwrap();
        let recorded = Recorded {
            n: log.len(),
            at,
            answered: None,
            method: head.method.to_string(),
            path: head.uri.path().to_string(),
            query: url::form_urlencoded::parse(head.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
            headers: head.headers,
            body,
        };
        log.push(recorded.clone());
        recorded
    };
    let reply = handler(&recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    log.lock().unwrap()[recorded.n].answered = Some(Instant::now());
    #[cfg(feature = "testing")]
    if reply.fault == Fault::Drop {
        return Err(io::Error::other("connection dropped on purpose"));
    }
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = SimBody {
        data: Some(reply.body),
        fault: reply.fault,
        pause: None,
    };
    response.body(body).map_err(io::Error::other)
}

/// A response body that can break off or never end.
struct SimBody {
    data: Option<Bytes>,
    fault: Fault,
    /// Before a cut body breaks off: the pause that lets hyper flush what was sent, so the
    /// client sees a response whose body ends early rather than no response at all.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(pause) = &mut this.pause {
            let cut = io::Error::other("body cut on purpose");
            return pause.as_mut().poll(cx).map(|()| Some(Err(cut)));
        }
        Poll::Ready(match (this.fault, this.data.take()) {
            #[cfg(feature = "testing")]
            (Fault::Endless, Some(chunk)) => {
                this.data = Some(chunk.clone());
                Some(Ok(Frame::data(chunk)))
            }
            #[cfg(feature = "testing")]
            (Fault::Cut(keep), Some(data)) => {
                this.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
                Some(Ok(Frame::data(data.slice(..keep.min(data.len())))))
            }
            (_, Some(data)) => Some(Ok(Frame::data(data))),
            (_, None) => None,
        })
    }

    fn size_hint(&self) -> SizeHint {
        match (self.fault, &self.data) {
            #[cfg(feature = "testing")]
            (Fault::Endless, _) => SizeHint::default(),
            #[cfg(feature = "testing")]
            (Fault::Cut(_), Some(data)) => SizeHint::with_exact(data.len() as u64),
            (_, data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.fault == Fault::None && self.data.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn raw_get(server: &Server) -> Vec<u8> {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /x?page=2 HTTP/1.1\r\nhost: sim\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    #[test]
    fn a_cut_body_announces_more_than_it_sends() {
        let server = Server::start(|_| Reply::status(200).body("0123456789").cut_after(4)).unwrap();
        let got = String::from_utf8(raw_get(&server)).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("content-length: 10\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n0123"), "{got}");
    }

    #[test]
    fn a_dropped_connection_sends_nothing() {
        let server = Server::start(|_| Reply::drop_connection()).unwrap();
        assert_eq!(raw_get(&server), b"");
        let reqs = server.requests();
        assert_eq!((reqs.len(), reqs[0].param("page")), (1, Some("2")));
    }
}
