//! A pipelined connection: one broker connection whose stream is split between a
//! writer and a reader, driven together by a task of their own, so that several
//! requests are in flight on it at once.
//!
//! - [`Pipeline::send`] encodes the request and queues its frame at once (it does not
//!   wait): frames are written in the order `send` was called, and a broker answers a
//!   connection's requests in that order (Kafka's rule), so a caller's ordering is the
//!   broker's. What it returns, a [`PendingResponse`], resolves with the answer.
//! - The reader reads responses in order and matches each to the oldest unanswered
//!   request by correlation id; a response that answers some other request breaks the
//!   connection. While no answer is awaited it still watches the socket: the broker
//!   closing an idle connection (its `connections.max.idle.ms`), a socket error, or
//!   bytes nobody asked for break the connection at once, so the next request goes on
//!   a new one instead of into a dead socket.
//! - A request with no response (Produce with acks=0, [`Pipeline::send_no_response`])
//!   takes no place among the awaited answers; its [`PendingWrite`] resolves once its
//!   bytes are written.
//! - Each request must be answered within the request timeout, counted from `send`;
//!   a frame must be written within it too.
//! - Any failure (I/O error, timeout, oversized frame, a response header that does not
//!   decode or answers another request, a body that does not decode) breaks the
//!   connection: [`Pipeline::is_broken`] turns true before any request hears of it. A
//!   request whose answer failed to arrive or decode fails with that error, and so does
//!   a request without response whose write failed; every other request queued or
//!   awaiting an answer fails with [`Error::Io`] naming the failure (retriable: none of
//!   them was answered), including a request expecting an answer whose own write
//!   failed (it is among the awaited ones once its write starts). Later sends fail at
//!   once. Owners then open a new connection.
//! - Cancel safety: dropping a [`PendingResponse`] does not disturb the stream (its
//!   answer is still read, then dropped). Dropping the [`Pipeline`] lets the requests
//!   already sent be answered, then closes the connection.
//!
//! The queue of frames is not bounded here: the caller bounds what it has in flight
//! (the producer: `max_in_flight_requests`).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tracing::{debug, trace};

use super::transport::Transport;
use super::{bad_frame_size, client_range, encode_frame, io_error, ConnectionConfig, Request};
use crate::error::{Error, Result};

/// Read buffer of the reader: responses are mostly small, and several may arrive in
/// one segment.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A negotiated connection with several requests in flight. See the module docs.
#[derive(Debug)]
pub struct Pipeline {
    addr: Arc<str>,
    client_id: String,
    request_timeout: Duration,
    /// api key → the highest version both sides speak.
    versions: HashMap<i16, i16>,
    next_correlation_id: AtomicI32,
    frames: mpsc::UnboundedSender<Outgoing>,
    link: Arc<Link>,
}

/// What the task and the handles share.
#[derive(Debug)]
struct Link {
    addr: Arc<str>,
    broken: AtomicBool,
    /// Asks the task to break the connection (a body that did not decode).
    shutdown: Notify,
}

impl Link {
    fn set_broken(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    /// Breaks the connection from a handle: marked at once, closed by the task.
    fn break_off(&self) {
        self.set_broken();
        self.shutdown.notify_one();
    }

    /// A failure of the task: the connection is marked broken before it is returned,
    /// so before any waiter hears of it.
    fn failure(&self, error: Error, waiter: Option<Waiter>) -> Failure {
        self.set_broken();
        Failure { error, waiter }
    }

    fn closed(&self) -> Error {
        closed_error(&self.addr, "connection closed after an earlier failure")
    }
}

/// One frame for the writer.
struct Outgoing {
    frame: BytesMut,
    api: ApiKey,
    deadline: Instant,
    waiter: Waiter,
}

/// Who waits for a frame: for its response, or (no response) for its bytes written.
enum Waiter {
    Response(Expected),
    Written(oneshot::Sender<Result<()>>),
}

/// A request written (or being written) whose response the reader waits for.
struct Expected {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    deadline: Instant,
    reply: oneshot::Sender<Result<Bytes>>,
}

impl Waiter {
    fn fail(self, error: Error) {
        match self {
            Waiter::Response(e) => {
                let _ = e.reply.send(Err(error));
            }
            Waiter::Written(w) => {
                let _ = w.send(Err(error));
            }
        }
    }
}

/// Why the task stopped: the error, and the waiter it hit (if any).
struct Failure {
    error: Error,
    waiter: Option<Waiter>,
}

/// What the writer and reader need to know of the connection's settings.
struct ReadSettings {
    addr: Arc<str>,
    timeout: Duration,
    max_frame_bytes: usize,
    security: crate::security::Security,
}

impl Pipeline {
    /// Starts the task driving `stream`, negotiated at `versions`.
    pub(super) fn start(
        addr: String,
        stream: Transport,
        config: ConnectionConfig,
        versions: HashMap<i16, i16>,
        next_correlation_id: i32,
    ) -> Pipeline {
        let addr: Arc<str> = Arc::from(addr);
        let link = Arc::new(Link {
            addr: Arc::clone(&addr),
            broken: AtomicBool::new(false),
            shutdown: Notify::new(),
        });
        let (frames, outgoing) = mpsc::unbounded_channel();
        let settings = ReadSettings {
            addr: Arc::clone(&addr),
            timeout: config.request_timeout,
            max_frame_bytes: config.max_frame_bytes,
            security: config.security,
        };
        tokio::spawn(drive(stream, settings, outgoing, Arc::clone(&link)));
        Pipeline {
            addr,
            client_id: config.client_id,
            request_timeout: config.request_timeout,
            versions,
            next_correlation_id: AtomicI32::new(next_correlation_id),
            frames,
            link,
        }
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether a failure broke the connection: every later send fails.
    pub fn is_broken(&self) -> bool {
        self.link.broken.load(Ordering::SeqCst)
    }

    /// The version that will be used for `api`, if the broker and client share one.
    pub fn api_version(&self, api: ApiKey) -> Option<i16> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The bound on each request's round trip, counted from `send`.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Queues `request` at the negotiated version (written after every request sent
    /// before it) and returns its pending answer. Fails at once, sending nothing, when
    /// the API is not shared, the request does not encode or the connection is broken.
    pub fn send<R: Request>(&self, request: &R) -> Result<PendingResponse<R::Response>> {
        let (api, version, correlation_id, frame) = self.encode(request)?;
        let deadline = Instant::now() + self.request_timeout;
        let (reply, rx) = oneshot::channel();
        let expected = Expected {
            api,
            version,
            correlation_id,
            deadline,
            reply,
        };
        self.queue(frame, api, deadline, Waiter::Response(expected))?;
        Ok(PendingResponse {
            rx,
            api,
            version,
            link: Arc::clone(&self.link),
            response: PhantomData,
        })
    }

    /// Queues `request`, which the broker does not answer (Produce with acks=0): it
    /// takes no place among the awaited responses. The returned [`PendingWrite`]
    /// resolves once its bytes are written.
    pub fn send_no_response<R: Request>(&self, request: &R) -> Result<PendingWrite> {
        let (api, _, _, frame) = self.encode(request)?;
        let deadline = Instant::now() + self.request_timeout;
        let (written, rx) = oneshot::channel();
        self.queue(frame, api, deadline, Waiter::Written(written))?;
        Ok(PendingWrite {
            rx,
            link: Arc::clone(&self.link),
        })
    }

    fn encode<R: Request>(&self, request: &R) -> Result<(ApiKey, i16, i32, BytesMut)> {
        if self.is_broken() {
            return Err(self.link.closed());
        }
        let api = R::KEY;
        let version = self.api_version(api).ok_or_else(|| {
            let (client_min, client_max) = client_range(api).unwrap_or((-1, -1));
            Error::UnsupportedApi {
                addr: self.addr.to_string(),
                api,
                client_min,
                client_max,
            }
        })?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(&self.client_id, api, version, correlation_id, request)?;
        trace!(api = ?api, version, correlation_id, bytes = frame.len(), addr = %self.addr, "pipelined request");
        Ok((api, version, correlation_id, frame))
    }

    fn queue(&self, frame: BytesMut, api: ApiKey, deadline: Instant, waiter: Waiter) -> Result<()> {
        let outgoing = Outgoing {
            frame,
            api,
            deadline,
            waiter,
        };
        self.frames.send(outgoing).map_err(|_| self.link.closed())
    }
}

/// The answer to a request sent on a [`Pipeline`]; dropping it is harmless.
#[derive(Debug)]
pub struct PendingResponse<T> {
    rx: oneshot::Receiver<Result<Bytes>>,
    api: ApiKey,
    version: i16,
    link: Arc<Link>,
    response: PhantomData<fn() -> T>,
}

impl<T: Decodable> Future for PendingResponse<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        let answer = match ready!(Pin::new(&mut this.rx).poll(cx)) {
            Ok(answer) => answer,
            // The task ended without answering (it was dropped): the connection broke.
            Err(_) => {
                this.link.set_broken();
                Err(this.link.closed())
            }
        };
        let mut body = match answer {
            Ok(body) => body,
            Err(e) => return Poll::Ready(Err(e)),
        };
        Poll::Ready(T::decode(&mut body, this.version).map_err(|e| {
            // As a one-at-a-time connection does: an answer we cannot read ends it.
            this.link.break_off();
            Error::Decode {
                addr: this.link.addr.to_string(),
                api: this.api,
                version: this.version,
                reason: e.to_string(),
            }
        }))
    }
}

/// The write of a request without response; dropping it is harmless.
#[derive(Debug)]
pub struct PendingWrite {
    rx: oneshot::Receiver<Result<()>>,
    link: Arc<Link>,
}

impl Future for PendingWrite {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        Poll::Ready(match ready!(Pin::new(&mut this.rx).poll(cx)) {
            Ok(result) => result,
            Err(_) => {
                this.link.set_broken();
                Err(this.link.closed())
            }
        })
    }
}

fn closed_error(addr: &str, why: &str) -> Error {
    Error::io(
        addr,
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_string()),
    )
}

/// The connection's task: the writer and the reader, until the pipeline is dropped and
/// every request answered, or until a failure, which fails every waiter.
async fn drive(
    stream: Transport,
    settings: ReadSettings,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    link: Arc<Link>,
) {
    let (read, write) = tokio::io::split(stream);
    let (expected_tx, mut expected) = mpsc::unbounded_channel();
    let ended = {
        let writer = write_frames(write, &mut outgoing, expected_tx, &settings, &link);
        let reader = read_responses(
            BufReader::with_capacity(READ_BUFFER_BYTES, read),
            &mut expected,
            &settings,
            &link,
        );
        tokio::select! {
            ended = writer => ended,
            ended = reader => ended,
            () = link.shutdown.notified() => Err(link.failure(
                closed_error(&settings.addr, "a response did not decode"),
                None,
            )),
        }
    };
    let Err(Failure { error, waiter }) = ended else {
        return;
    };
    // Already marked by `Link::failure`: whoever handles the failure sees it.
    debug_assert!(link.broken.load(Ordering::SeqCst));
    debug!(addr = %settings.addr, error = %error, "pipelined connection failed; closing it");
    let others = closed_error(
        &settings.addr,
        &format!("connection closed after an earlier failure: {error}"),
    );
    if let Some(waiter) = waiter {
        waiter.fail(error);
    }
    expected.close();
    while let Ok(e) = expected.try_recv() {
        Waiter::Response(e).fail(others.clone());
    }
    outgoing.close();
    while let Ok(o) = outgoing.try_recv() {
        o.waiter.fail(others.clone());
    }
}

/// Writes frames in the order they were queued, each within its deadline. A frame
/// that expects a response is handed to the reader before it is written. Returns only
/// on a failure; once the pipeline is dropped it lets the reader finish.
async fn write_frames(
    mut write: impl AsyncWrite + Unpin,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    expected: mpsc::UnboundedSender<Expected>,
    settings: &ReadSettings,
    link: &Link,
) -> std::result::Result<(), Failure> {
    let addr = &*settings.addr;
    loop {
        let Some(o) = outgoing.recv().await else {
            drop(expected);
            return std::future::pending().await;
        };
        let written = match o.waiter {
            Waiter::Response(e) => {
                // The reader ends first only by failing, which ends the task before the
                // writer runs again; should it be gone all the same, that is a failure.
                if let Err(mpsc::error::SendError(e)) = expected.send(e) {
                    let error = closed_error(addr, "the connection's reader stopped");
                    return Err(link.failure(error, Some(Waiter::Response(e))));
                }
                None
            }
            Waiter::Written(w) => Some(w),
        };
        let attempt = async {
            write.write_all(&o.frame).await?;
            // TLS may hold the last record back until flushed (a no-op on TCP).
            write.flush().await
        };
        let error = match tokio::time::timeout_at(o.deadline, attempt).await {
            Ok(Ok(())) => {
                if let Some(w) = written {
                    let _ = w.send(Ok(()));
                }
                continue;
            }
            Ok(Err(e)) => io_error(addr, e),
            Err(_) => Error::Timeout {
                addr: addr.to_string(),
                api: o.api,
                timeout: settings.timeout,
            },
        };
        return Err(link.failure(error, written.map(Waiter::Written)));
    }
}

/// Reads responses in order, each within its request's deadline, and hands each body
/// to its request's waiter. While no answer is awaited it watches the socket: the
/// broker closing it, an error or unexpected bytes are a failure. Returns `Ok` once
/// the writer is gone and every request it wrote is answered.
async fn read_responses(
    mut read: impl AsyncBufRead + Unpin,
    expected: &mut mpsc::UnboundedReceiver<Expected>,
    settings: &ReadSettings,
    link: &Link,
) -> std::result::Result<(), Failure> {
    loop {
        let e = tokio::select! {
            biased;
            e = expected.recv() => match e {
                Some(e) => e,
                None => return Ok(()),
            },
            idle = read.fill_buf() => {
                let idle = idle.map(|buffered| buffered.len());
                // A request is handed to the reader before it is written, so bytes
                // answering it find it queued.
                match expected.try_recv() {
                    Ok(e) if matches!(idle, Ok(n) if n > 0) => e,
                    Ok(e) => return Err(link.failure(idle_error(settings, idle), Some(Waiter::Response(e)))),
                    Err(_) => return Err(link.failure(idle_error(settings, idle), None)),
                }
            }
        };
        read_answer(&mut read, e, settings, link).await?;
    }
}

/// What the socket of a connection with no request outstanding did: closed (0 bytes),
/// failed, or sent bytes nobody asked for.
fn idle_error(settings: &ReadSettings, idle: std::io::Result<usize>) -> Error {
    let addr = &*settings.addr;
    match idle {
        Ok(0) => closed_error(addr, "the broker closed the idle connection"),
        Ok(n) => Error::io(
            addr,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{n} bytes arrived while no request was outstanding"),
            ),
        ),
        Err(e) => io_error(addr, e),
    }
}

/// Reads the answer to `e` within its deadline and hands its body to its waiter.
async fn read_answer(
    read: &mut (impl AsyncRead + Unpin),
    e: Expected,
    settings: &ReadSettings,
    link: &Link,
) -> std::result::Result<(), Failure> {
    let frame = match tokio::time::timeout_at(e.deadline, read_frame(read, settings)).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(error)) => return Err(failure(link, error, e)),
        Err(_) => {
            let error = Error::Timeout {
                addr: settings.addr.to_string(),
                api: e.api,
                timeout: settings.timeout,
            };
            return Err(failure(link, error, e));
        }
    };
    match answer_body(frame, &e, &settings.addr) {
        Ok(body) => {
            // Its caller may have dropped the pending response: the answer was read all
            // the same, so the stream stays in step.
            let _ = e.reply.send(Ok(body));
            Ok(())
        }
        Err(error) => Err(failure(link, error, e)),
    }
}

fn failure(link: &Link, error: Error, e: Expected) -> Failure {
    link.failure(error, Some(Waiter::Response(e)))
}

/// The body of `frame`, once its header shows it answers `e`.
fn answer_body(mut frame: Bytes, e: &Expected, addr: &str) -> Result<Bytes> {
    let header_version = e.api.response_header_version(e.version);
    let decode_error = |reason: String| Error::Decode {
        addr: addr.to_string(),
        api: e.api,
        version: e.version,
        reason,
    };
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|err| decode_error(format!("response header: {err}")))?;
    if header.correlation_id != e.correlation_id {
        return Err(decode_error(format!(
            "correlation id {} answers no request (expected {})",
            header.correlation_id, e.correlation_id
        )));
    }
    Ok(frame)
}

async fn read_frame(read: &mut (impl AsyncRead + Unpin), settings: &ReadSettings) -> Result<Bytes> {
    let addr = &settings.addr;
    let size = read.read_i32().await.map_err(|e| io_error(addr, e))?;
    let limit = settings.max_frame_bytes;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= limit)
        .ok_or_else(|| bad_frame_size(addr, &settings.security, size, limit))?;
    let mut body = vec![0u8; size];
    read.read_exact(&mut body)
        .await
        .map_err(|e| io_error(addr, e))?;
    Ok(Bytes::from(body))
}
