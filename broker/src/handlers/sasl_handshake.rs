//! SaslHandshake (v1): the client names its mechanism; the answer lists the ones the
//! listener offers. The tokens follow in SaslAuthenticate. (v0, whose tokens follow as
//! raw frames, is not advertised: every client since Kafka 1.0 uses v1.)

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use sasl::Mechanism;
use tracing::info;

use super::RequestContext;
use crate::session::Auth;

pub fn handle(ctx: &RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let session = &ctx.session;
    let offered: Vec<StrBytes> = session
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let answer = |code: i16| {
        SaslHandshakeResponse::default()
            .with_error_code(ctx.code(code))
            .with_mechanisms(offered.clone())
    };
    if session.mechanisms.is_empty() {
        // A PLAINTEXT or SSL listener: nothing to authenticate.
        return answer(ResponseError::IllegalSaslState.code());
    }
    let state = session.take_auth();
    if !matches!(state, Auth::Handshake) {
        session.close_after_reply();
        return answer(ResponseError::IllegalSaslState.code());
    }
    let wanted = request.mechanism.as_str();
    match Mechanism::parse(wanted).filter(|m| session.mechanisms.contains(m)) {
        Some(m) => {
            session.set_auth(Auth::Chosen(m));
            answer(0)
        }
        None => {
            info!(peer = ?session.peer, listener = %session.listener, mechanism = wanted, "SASL mechanism not offered; closing");
            session.close_after_reply();
            answer(ResponseError::UnsupportedSaslMechanism.code())
        }
    }
}
