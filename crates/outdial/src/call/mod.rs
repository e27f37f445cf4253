//! One conversation's task (docs/architecture.md, "The conversation engine"): it prepares the call (an RTP port,
//! the INVITE), then runs the conversation's state machine ([`outdial_conversation::Machine`]) with the driver
//! loop against the real world ([`io::CallIo`]): SIP, media, the bot, speech, the store.

mod inputs;
mod io;

use crate::engine::Ctx;
use crate::invite::request;
use outdial_api::engine::AcceptedCall;
use outdial_conversation::{CallSettings, Machine, driver};
use outdial_core::ReasonCode;
use outdial_core::time::now_ms;
use outdial_media::RtpSession;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Command {
    Hangup,
    /// The drain time is over: end the call.
    Shutdown,
}

/// Runs one conversation, from its RTP port to its end.
///
/// A task's future takes the room of its largest state for the whole call, so the task holds only pointers: the
/// preparation and the conversation are futures of their own on the heap, the first freed before the second is
/// made (BENCHMARKS.md, "Media": memory per call).
pub async fn run(ctx: Arc<Ctx>, call: Box<AcceptedCall>, commands: mpsc::Receiver<Command>) {
    let id = call.conversation.id;
    // The machine and its world are moved into the conversation's future inside this block, so that the task's
    // future keeps no room for them across the await below.
    let conversation = {
        let Some((machine, io)) = Box::pin(prepare(ctx, *call, commands)).await else {
            return;
        };
        Box::pin(driver::run(machine, io))
    };
    let ended = conversation.await;
    tracing::info!(
        conversation = %id,
        reason_code = ?ended.reason_code,
        "conversation ended: {}",
        ended.reason.as_deref().unwrap_or_default()
    );
}

/// The call's RTP port and INVITE, its state machine and its world; None when the call failed before it began
/// (its end is recorded).
async fn prepare(
    ctx: Arc<Ctx>,
    call: AcceptedCall,
    commands: mpsc::Receiver<Command>,
) -> Option<(Machine, io::CallIo)> {
    let AcceptedCall {
        conversation,
        bot,
        trunk,
        lease,
        notify_secret,
    } = call;
    let id = conversation.id;
    let mut rtp = match RtpSession::bind_from(ctx.rtp_ip, &ctx.rtp_pool) {
        Ok(r) => r,
        Err(e) => {
            fail(&ctx, conversation, lease, e.to_string(), notify_secret).await;
            return None;
        }
    };
    // docs/trunks.md, "SRTP": the trunk's srtp decides the offer's profile and keys.
    let security = match trunk.srtp {
        outdial_core::trunk::Srtp::Off => outdial_media::Security::Plain,
        outdial_core::trunk::Srtp::Optional => outdial_media::Security::Optional,
        outdial_core::trunk::Srtp::Required => outdial_media::Security::Required,
    };
    rtp.set_codecs(&trunk.codecs);
    let offer = rtp.offer_secure(now_ms() as u64, security);
    let local = ctx.rtp_ip.to_string();
    let req = if trunk.tls_ca_file.is_some() {
        // The INVITE reads the trunk's TLS CA file (renewals are picked up): off the runtime's threads.
        let (conv, trunk_c) = (conversation.clone(), trunk.clone());
        match tokio::task::spawn_blocking(move || request(&conv, &trunk_c, offer, &local)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        request(&conversation, &trunk, offer, &local).map_err(|e| e.to_string())
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            fail(&ctx, conversation, lease, e, notify_secret).await;
            return None;
        }
    };
    let dialing = json!({"callId": req.call_id, "requestUri": req.target, "trunk": trunk.name, "destination": req.destination});
    let settings = CallSettings {
        bot: bot.clone(),
        max_call_duration: ctx.max_call_duration,
        dialing,
    };
    let recording = ctx.recorder.start(id, notify_secret);
    let io = io::CallIo::new(
        ctx.clone(),
        bot,
        id,
        req,
        rtp,
        commands,
        lease,
        recording,
        trunk.name.clone(),
    );
    Some((Machine::new(conversation, settings), io))
}

/// The call could not even be prepared: the conversation fails at once.
async fn fail(
    ctx: &Ctx,
    conversation: outdial_core::Conversation,
    lease: outdial_limits::Lease,
    reason: String,
    secret: Option<String>,
) {
    let id = conversation.id;
    if let Err(e) = ctx
        .recorder
        .end(conversation, ReasonCode::Error, &reason, secret.as_deref(), lease)
        .await
    {
        tracing::error!(conversation = %id, "could not record the end of the conversation: {e}");
    }
    tracing::info!(conversation = %id, "conversation ended: {reason}");
}
