//! One client connection: length-prefixed frames in, responses out in request order.
//!
//! The reader decodes each request and runs its handler up to the point where the
//! answer is known or only waiting remains (durability for acks=all, data for a Fetch
//! long poll); the writer awaits those answers in order and writes them. So requests
//! are applied in the order they arrived (a producer's batches stay in sequence), while
//! the waits of pipelined requests overlap (`MAX_IN_FLIGHT_PER_CONNECTION`).
//!
//! A frame longer than `socket.request.max.bytes`, an unknown API key, a header or body
//! the codec cannot decode, or an API version we do not answer closes this connection
//! only, as Kafka does; ApiVersions at an unknown version gets UNSUPPORTED_VERSION in
//! the v0 layout so the client can retry lower.

use std::sync::Arc;
use std::time::Instant;

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, debug_span, info, warn, Instrument};

use crate::config::audit_log::EventType;
use crate::handlers::{self, Reply, RequestContext};
use crate::kafka_codes::error_name;
use crate::metrics::{ApiLabels, RequestLabels};
use crate::response_frame::{self, ResponseFrame};
use crate::session::{ListenerId, Session};
use crate::shutdown::Shutdown;
use crate::throttle::{self, Usage};
use crate::Broker;

/// The connection's write buffer: smaller answers are gathered in it.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The largest frame of a connection that has not finished SASL authentication (Kafka's
/// default `sasl.server.max.receive.size`).
pub const SASL_MAX_RECEIVE_BYTES: usize = 512 * 1024;

/// Requests whose answers may be pending at once on one connection.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 64;

/// Why a connection is being closed.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {0} bytes is outside 0..=socket.request.max.bytes")]
    BadLength(i64),
    #[error("request frame not complete after connections.max.idle.ms")]
    Slow,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One request frame and its share of `queued.max.request.bytes`, held until the
/// request has been handled (its frame is then dropped, or detached by a handler that
/// parks it).
struct Frame {
    bytes: Bytes,
    _queued: tokio::sync::OwnedSemaphorePermit,
}

/// Reads one frame; `None` at a clean end of stream between frames. Waits for the
/// frame's share of `queued` before reading its body (never more than the whole budget,
/// so one frame larger than it still gets through, alone), and gives the body at most
/// `idle` to arrive.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max_bytes: usize,
    queued: &Arc<tokio::sync::Semaphore>,
    queued_max_bytes: usize,
    idle: std::time::Duration,
) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > max_bytes {
        return Err(FrameError::BadLength(len as i64));
    }
    let len = len as usize;
    let share = len.min(queued_max_bytes).min(u32::MAX as usize) as u32;
    let permit = queued
        .clone()
        .acquire_many_owned(share)
        .await
        .map_err(|_| std::io::Error::other("the broker is stopping"))?;
    // Read into uninitialised capacity: no zeroing pass over every byte that arrives.
    let mut buf = BytesMut::with_capacity(len);
    let body = async {
        while buf.len() < len {
            let want = (len - buf.len()) as u64;
            if (&mut *reader).take(want).read_buf(&mut buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(idle, body).await {
        Ok(read) => read?,
        Err(_) => return Err(FrameError::Slow),
    }
    Ok(Some(Frame {
        bytes: buf.freeze(),
        _queued: permit,
    }))
}

/// Waits until the next request starts arriving: `Ok(true)` when it does, `Ok(false)`
/// after `idle` with nothing read and no answer pending (`in_flight` is zero), as
/// `connections.max.idle.ms` closes such a connection. Cancel-safe: bytes already
/// buffered stay for [`read_frame`].
async fn next_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    idle: std::time::Duration,
    in_flight: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<bool> {
    use tokio::io::AsyncBufReadExt;
    loop {
        match tokio::time::timeout(idle, reader.fill_buf()).await {
            Ok(read) => return read.map(|_| true),
            Err(_) if in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 => {
                return Ok(false)
            }
            // An answer still pending (a long poll, an acks=all wait): not idle.
            Err(_) => continue,
        }
    }
}

/// A request whose answer the writer awaits.
struct Pending {
    ctx: Arc<RequestContext>,
    /// The version the response is encoded at (0 for an unsupported ApiVersions).
    response_version: i16,
    reply: Reply,
    started: Instant,
    /// What it used, for the client quotas.
    usage: Usage,
    /// The change it asks for, to record in the audit trail once answered.
    audited: Option<crate::audit_trail::Pending>,
}

/// Until when the connection reads no request: a client over its quota waits out its
/// throttle time (KIP-219).
type Mute = Arc<std::sync::Mutex<Option<Instant>>>;

/// Mutes the connection until `until`, unless it already is for longer.
fn mute(muted: &Mute, until: Instant) {
    let mut m = muted.lock().unwrap_or_else(|p| p.into_inner());
    if m.is_none_or(|t| t < until) {
        *m = Some(until);
    }
}

/// Waits until the connection is no longer muted (the writer may extend the mute
/// meanwhile); `false` when shutdown came first.
async fn wait_unmuted(muted: &Mute, shutdown: &mut Shutdown) -> bool {
    loop {
        let until = *muted.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = until.filter(|t| *t > Instant::now()) else {
            return true;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
            _ = shutdown.wait() => return false,
        }
    }
}

/// Serves one plaintext connection until the client closes it, it misbehaves, or
/// shutdown.
pub async fn serve(
    stream: TcpStream,
    listener: ListenerId,
    broker: Arc<Broker>,
    shutdown: Shutdown,
) {
    let session = listener.session(stream.peer_addr().ok());
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    serve_halves(read_half, write_half, session, broker, shutdown).await
}

/// Serves one TLS connection: the handshake (within [`crate::tls::HANDSHAKE_TIMEOUT`]),
/// then requests as on a plaintext one. A failed handshake (a plaintext client, an
/// untrusted or expired client certificate) closes the connection.
pub async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    listener: ListenerId,
    broker: Arc<Broker>,
    shutdown: Shutdown,
) {
    let session = listener.session(stream.peer_addr().ok());
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let outcome = match handshake.await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(("failed", e.to_string())),
        Err(_) => Err(("timeout", "no handshake within the timeout".to_string())),
    };
    let labels = |outcome: &str| crate::metrics::TlsLabels {
        listener: session.listener.to_string(),
        outcome: outcome.into(),
    };
    let tls = match outcome {
        Ok(tls) => tls,
        Err((outcome, why)) => {
            broker
                .metrics
                .tls_handshakes
                .get_or_create(&labels(outcome))
                .inc();
            warn!(peer = ?session.peer, listener = %session.listener, error = why, "TLS handshake failed; closing");
            return;
        }
    };
    if let Err(why) = certificate_principal(&tls, &listener, &session) {
        let refused = labels("refused");
        broker.metrics.tls_handshakes.get_or_create(&refused).inc();
        warn!(peer = ?session.peer, listener = %session.listener, error = why, "client certificate refused; closing");
        return;
    }
    broker
        .metrics
        .tls_handshakes
        .get_or_create(&labels("ok"))
        .inc();
    let (read_half, write_half) = tokio::io::split(tls);
    serve_halves(read_half, write_half, session, broker, shutdown).await
}

/// Names the session after the client's verified certificate, if it sent one:
/// `ssl.principal.mapping.rules` applied to its subject. An error when no rule matches
/// (Kafka refuses such a client).
fn certificate_principal(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
    listener: &ListenerId,
    session: &Session,
) -> Result<(), String> {
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Ok(());
    };
    let subject = crate::principal::certificate_subject(cert)
        .ok_or("the client certificate's subject does not decode")?;
    let name = listener
        .principal_rules
        .apply(&subject)
        .ok_or_else(|| format!("no ssl.principal.mapping.rules rule matches {subject:?}"))?;
    info!(peer = ?session.peer, listener = %session.listener, principal = %format!("User:{name}"), "TLS client certificate accepted");
    session.set_certificate_name(name);
    Ok(())
}

async fn serve_halves<R, W>(
    read_half: R,
    write_half: W,
    session: Session,
    broker: Arc<Broker>,
    mut shutdown: Shutdown,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = session
        .peer
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let session = Arc::new(session);
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT_PER_CONNECTION);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let muted: Mute = Arc::default();
    let writer = tokio::spawn(write_responses(
        write_half,
        rx,
        broker.clone(),
        in_flight.clone(),
        muted.clone(),
    ));
    let stop = loop {
        if !wait_unmuted(&muted, &mut shutdown).await {
            break Stop::Closing;
        }
        // Before SASL authentication a frame is an ApiVersions or a SASL token: Kafka's
        // `sasl.server.max.receive.size` bounds it, not `socket.request.max.bytes`.
        let limit = if session.authenticated_or_open() {
            broker.config.socket_request_max_bytes
        } else {
            SASL_MAX_RECEIVE_BYTES
        };
        let frame = match next_frame(
            &mut reader,
            &broker,
            limit,
            &in_flight,
            &mut shutdown,
            &peer,
        )
        .await
        {
            Ok(frame) => frame,
            Err(stop) => break stop,
        };
        broker.metrics.bytes_in.inc_by(frame.bytes.len() as u64 + 4);
        let started = Instant::now();
        // A mute set while this frame was awaited holds it back too.
        if !wait_unmuted(&muted, &mut shutdown).await {
            break Stop::Closing;
        }
        let Frame { bytes, _queued } = frame;
        let dispatched = decode_and_dispatch(&broker, bytes, &session, &muted).await;
        drop(_queued);
        match dispatched {
            Ok(pending) => {
                let usage = Usage {
                    handler_time: started.elapsed(),
                    ..pending.usage
                };
                let pending = Pending {
                    started,
                    usage,
                    ..pending
                };
                in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                if tx.send(pending).await.is_err() {
                    break Stop::Closing; // the writer failed: the socket is gone
                }
                if session.closing() {
                    // A failed authentication: its answer is written, then the end.
                    break Stop::Closing;
                }
            }
            Err(why) => {
                warn!(peer, error = why, "closing connection");
                break Stop::Closing;
            }
        }
    };
    drop(tx);
    if stop == Stop::ClientGone {
        // Drop the answers still waiting (a JoinGroup parked in a rebalance, a Fetch
        // long poll): their waits end now, so the group coordinator sees the member's
        // JoinGroup abandoned and the connection slot is freed at once.
        writer.abort();
    }
    // Otherwise (shutdown, a bad frame) answers already accepted are still written.
    let _ = writer.await;
    debug!(peer, "connection closed");
}

/// Why a connection stops reading requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The client hung up (end of stream or a read error): nobody is left to answer.
    ClientGone,
    /// Shutdown, idleness, a bad frame or a failed writer.
    Closing,
}

/// Waits for the next request and reads its frame, within the connection's limits
/// (`connections.max.idle.ms`, `socket.request.max.bytes`, the broker's
/// `queued.max.request.bytes`); why the connection stops reading otherwise.
async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    broker: &Broker,
    max_bytes: usize,
    in_flight: &std::sync::atomic::AtomicUsize,
    shutdown: &mut Shutdown,
    peer: &str,
) -> Result<Frame, Stop> {
    let config = &broker.config;
    let idle = config.connections_max_idle;
    let arriving = tokio::select! {
        arriving = next_request(reader, idle, in_flight) => arriving,
        _ = shutdown.wait() => return Err(Stop::Closing),
    };
    match arriving {
        Ok(true) => {}
        Ok(false) => {
            broker.metrics.connections_idle_closed.inc();
            debug!(
                peer,
                "closing a connection idle for connections.max.idle.ms"
            );
            return Err(Stop::Closing);
        }
        Err(e) => {
            debug!(peer, error = %e, "connection read failed");
            return Err(Stop::ClientGone);
        }
    }
    let (max, queued_max) = (max_bytes, config.queued_max_request_bytes);
    let queued = &broker.queued_request_bytes;
    let frame = tokio::select! {
        frame = read_frame(reader, max, queued, queued_max, idle) => frame,
        _ = shutdown.wait() => return Err(Stop::Closing),
    };
    match frame {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(Stop::ClientGone),
        Err(e) => {
            warn!(peer, error = %e, "closing connection");
            Err(if matches!(e, FrameError::Io(_)) {
                Stop::ClientGone
            } else {
                Stop::Closing
            })
        }
    }
}

async fn decode_and_dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    session: &Arc<Session>,
    muted: &Mute,
) -> Result<Pending, String> {
    let request_bytes = frame.len();
    let request = crate::request::decode(frame)?;
    let (api, version) = (request.api, request.version);
    if !session.may_serve(api) {
        return Err(format!(
            "{api:?} before SASL authentication on listener {}",
            session.listener
        ));
    }
    let ctx = Arc::new(RequestContext::new(
        broker.clone(),
        api,
        version,
        request.header.correlation_id,
        // Copied out of the frame, so a request that waits (a long poll, acks=all)
        // does not keep the whole frame alive through its context.
        request
            .header
            .client_id
            .map(|c| StrBytes::from_string(c.to_string())),
        session.clone(),
    ));
    // Produce is charged as it is read, so a client pipelining requests is muted
    // before the next one is read (not once its answers are written).
    let produced = throttle::record_produce(broker, &ctx, request_bytes);
    if !produced.is_zero() {
        mute(muted, Instant::now() + produced);
    }
    let audited = match &request.body {
        crate::request::Body::Decoded(r) if broker.audit_trail.records(EventType::Management) => {
            crate::audit_trail::management_event(r)
        }
        _ => None,
    };
    let span = debug_span!("request", api = ?api, version, correlation_id = ctx.correlation_id);
    let (reply, response_version) = handlers::dispatch(ctx.clone(), request.body)
        .instrument(span)
        .await?;
    Ok(Pending {
        ctx,
        response_version,
        reply,
        started: Instant::now(),
        usage: Usage {
            produce_throttle: produced,
            ..Usage::default()
        },
        audited,
    })
}

/// Encodes a response frame: length, header (at the API's response header version),
/// body, as one contiguous buffer. The connection itself writes
/// [`crate::response_frame::encode`]'s chunks instead, which keep Fetch records by
/// reference.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    response_frame::encode(api, version, correlation_id, body)
        .map(|f| f.to_contiguous())
        .map_err(|e| e.to_string())
}

/// Writes one frame. A frame smaller than the write buffer is copied into it, so
/// pipelined answers share a `write`; a larger one goes to the socket as one vectored
/// write of its chunks (record bytes straight from the segment maps).
async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    frame: &ResponseFrame,
) -> std::io::Result<()> {
    if frame.len_bytes() < WRITE_BUFFER_BYTES {
        for chunk in frame.chunks() {
            writer.write_all(chunk).await?;
        }
        return Ok(());
    }
    writer.flush().await?;
    write_all_vectored(writer.get_mut(), frame.chunks()).await
}

/// iovecs handed to one `writev` (Linux allows 1024).
const MAX_IOVECS_PER_WRITE: usize = 64;

/// Writes every chunk, in order, with vectored writes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    out: &mut W,
    chunks: &[Bytes],
) -> std::io::Result<()> {
    let (mut chunk, mut at) = (0usize, 0usize);
    while chunk < chunks.len() {
        let mut slices = Vec::with_capacity(MAX_IOVECS_PER_WRITE);
        slices.push(IoSlice::new(&chunks[chunk][at..]));
        for c in chunks[chunk + 1..].iter().take(MAX_IOVECS_PER_WRITE - 1) {
            slices.push(IoSlice::new(c));
        }
        let mut written = out.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while chunk < chunks.len() && written >= chunks[chunk].len() - at {
            written -= chunks[chunk].len() - at;
            chunk += 1;
            at = 0;
        }
        at += written;
    }
    Ok(())
}

async fn write_responses<W: AsyncWrite + Unpin>(
    write_half: W,
    mut rx: mpsc::Receiver<Pending>,
    broker: Arc<Broker>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    muted: Mute,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
    while let Some(p) = rx.recv().await {
        let mut body = match p.reply {
            Reply::Now(body) => Some(*body),
            Reply::Later(fut) => Some(fut.await),
            Reply::Nothing => None,
        };
        let throttle = throttle::apply(&broker, &p.ctx, body.as_mut(), p.response_version, p.usage);
        if !throttle.is_zero() {
            mute(&muted, Instant::now() + throttle);
        }
        // Its wait is over: the connection may count as idle again once it is written.
        in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let errors = p.ctx.take_errors();
        if let Some(change) = p.audited {
            let outcome = crate::audit_trail::outcome_of(&errors);
            let kind = EventType::Management;
            let event = p
                .ctx
                .audit_event(kind, change.activity, change.resources, outcome);
            broker.audit_trail.record(&broker.metrics, event);
        }
        let api_name = format!("{:?}", p.ctx.api);
        broker
            .metrics
            .latency
            .get_or_create(&ApiLabels {
                api: api_name.clone(),
            })
            .observe(p.started.elapsed().as_secs_f64());
        broker
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                api: api_name.clone(),
                error: error_name(errors.first().copied().unwrap_or(0)),
            })
            .inc();
        for code in errors {
            broker
                .metrics
                .errors
                .get_or_create(&RequestLabels {
                    api: api_name.clone(),
                    error: error_name(code),
                })
                .inc();
        }
        let Some(body) = body else { continue };
        let frame = match response_frame::encode(
            p.ctx.api,
            p.response_version,
            p.ctx.correlation_id,
            &body,
        ) {
            Ok(frame) => frame,
            Err(e) => {
                warn!(api = ?p.ctx.api, version = p.response_version, error = %e, "cannot encode a response; closing");
                break;
            }
        };
        // The records now live in the frame's chunks; drop the rest of the body first.
        drop(body);
        broker.metrics.bytes_out.inc_by(frame.len_bytes() as u64);
        if write_frame(&mut writer, &frame).await.is_err() {
            break;
        }
        // Flush when nothing else is ready, so pipelined answers share a write.
        if rx.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
