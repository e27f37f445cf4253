//! One outbound call on the wire: the INVITE transaction (redirections, CANCEL), then the dialog until it ends,
//! answering the far end's in-dialog requests and carrying ours (BYE, REFER, INFO).

use crate::states::States;
use crate::{CallEvent, Control, Reply, RequestError, TlsClient, resolver, tls};
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{HeadersExt as _, StatusCode};
use rsipstack::transport::SipAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(crate) const MAX_REDIRECTS: u8 = 3;

/// How a call's destination is found. It is resolved (and a TLS connection opened with the trunk's own roots
/// and name) before each INVITE, so that a name that does not resolve fails the call at once rather than after
/// the stack's 32 s of retransmissions.
pub(crate) enum Route {
    Tls(Arc<tls::TlsConnections>, String, TlsClient),
    Resolve(resolver::Resolver),
}

impl Route {
    async fn destination(self, dialogs: &DialogLayer, opt: &InviteOption) -> Result<SipAddr, String> {
        match self {
            Route::Tls(connections, destination, settings) => {
                connections
                    .connect(&dialogs.endpoint.transport_layer, &destination, &settings)
                    .await
            }
            Route::Resolve(resolver) => {
                let target = match &opt.destination {
                    Some(d) => d.clone(),
                    None => SipAddr::try_from(&opt.callee)
                        .map_err(|e| format!("no destination for {}: {e}", opt.callee))?,
                };
                resolver.resolve_addr(&target).await
            }
        }
    }
}

/// What the INVITE's final answer asks for next.
pub(crate) enum Next {
    /// A 3xx to follow.
    Redirect(String),
    /// A 422: call again with this `Session-Expires`.
    Retry422 { min_se: u32 },
}

/// Where a call's events go. Boxed: a channel holds a block of 32 of its messages for the whole call
/// (docs/architecture.md, "Memory per call").
pub(crate) struct Events(pub(crate) mpsc::Sender<Box<CallEvent>>);

impl Events {
    pub(crate) async fn send(&self, event: CallEvent) -> Result<(), mpsc::error::SendError<Box<CallEvent>>> {
        self.0.send(Box::new(event)).await
    }
}

/// A session refresh's outcome: the final status and the interval the far end took, `None` without an answer.
type Refreshed = Result<Option<(u16, Option<String>)>, String>;

/// The answer of a one-shot in flight, taken when it comes; pending while there is none.
async fn once<T>(rx: &mut Option<oneshot::Receiver<T>>) -> Result<T, oneshot::error::RecvError> {
    match rx {
        Some(r) => {
            let answer = r.await;
            *rx = None;
            answer
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at` (forever without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ends an answered call from our side: BYE, the dialog removed, `Ended` (with why, when it is ours to say: a
/// session timer; a hang-up asked for by the conversation has none).
async fn end_session(
    dialog: &InviteDialog,
    dialogs: &Arc<DialogLayer>,
    answered_id: &mut Option<rsipstack::dialog::DialogId>,
    events: &Events,
    why: Option<String>,
) {
    if let Some(why) = &why {
        tracing::info!(call_id = %dialog.id().call_id, "{why}");
    }
    if let Err(e) = dialog.hangup().await {
        tracing::debug!("BYE: {e}");
    }
    if let Some(id) = answered_id.take() {
        dialogs.remove_dialog(&id);
    }
    let _ = events
        .send(CallEvent::Ended {
            by_remote: false,
            reason: why,
        })
        .await;
}

/// Runs an in-dialog request in its own task (the call's loop keeps serving the dialog meanwhile) and replies
/// with the final status.
fn in_dialog<F, Fut>(answered: bool, dialog: &InviteDialog, reply: Reply, send: F)
where
    F: FnOnce(InviteDialog) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = rsipstack::Result<Option<rsipstack::sip::Response>>> + Send,
{
    if !answered {
        let _ = reply.send(Err(RequestError::NotAnswered));
        return;
    }
    let dialog = dialog.clone();
    tokio::spawn(async move {
        let result = match send(dialog).await {
            Ok(Some(resp)) => Ok(resp.status_code.code()),
            Ok(None) => Err(RequestError::NoResponse),
            Err(e) => Err(RequestError::Transaction(e.to_string())),
        };
        let _ = reply.send(result);
    });
}

/// A NOTIFY of the `refer` event package: the sipfrag's status, and whether the subscription ended.
fn transfer_progress(req: &rsipstack::sip::Request) -> Option<CallEvent> {
    let event = req.header_value("Event").or_else(|| req.header_value("o"))?;
    if !event.trim().to_ascii_lowercase().starts_with("refer") {
        return None;
    }
    let body = String::from_utf8_lossy(&req.body);
    let status = body
        .lines()
        .next()?
        .trim()
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let done = req
        .header_value("Subscription-State")
        .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
    Some(CallEvent::TransferProgress { status, done })
}

/// The Contact URIs of a 3xx response, highest q first (RFC 3261 8.1.3.4).
fn redirect_targets(resp: &rsipstack::sip::Response) -> Vec<String> {
    let mut targets: Vec<(f32, usize, String)> = Vec::new();
    for h in resp.headers.iter() {
        let name = h.name();
        if !(name.eq_ignore_ascii_case("Contact") || name == "m") {
            continue;
        }
        for part in h.value().split(',') {
            let part = part.trim();
            let (uri, params) = match (part.find('<'), part.find('>')) {
                (Some(a), Some(b)) if a < b => (&part[a + 1..b], &part[b + 1..]),
                _ => (
                    part.split(';').next().unwrap_or(""),
                    part.split_once(';').map_or("", |x| x.1),
                ),
            };
            if !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
                continue;
            }
            let q = params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            targets.push((q, targets.len(), uri.to_string()));
        }
    }
    targets.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    targets.into_iter().map(|t| t.2).collect()
}

fn reason_of(resp: &rsipstack::sip::Response) -> String {
    if let Some(r) = resp.header_value("Reason") {
        return r;
    }
    let phrase = resp
        .wire_reason
        .clone()
        .unwrap_or_else(|| resp.status_code.text().to_string());
    format!("SIP ;cause={} ;text=\"{}\"", resp.status_code.code(), phrase)
}

/// One call: the INVITE transaction, then the dialog until it ends. Removes the dialog from the layer on
/// every path.
#[allow(clippy::too_many_arguments)] // One call's whole context, passed once.
pub(crate) async fn drive(
    (dialogs, states): (Arc<DialogLayer>, Arc<States>),
    mut opt: InviteOption,
    (first, resolver): (Route, resolver::Resolver),
    call_id: String,
    session_header: String,
    mut redirects_left: u8,
    events: Events,
    mut control: mpsc::UnboundedReceiver<Box<Control>>,
) {
    let mut route = Some(first);
    let mut retried_422 = false;
    loop {
        let route = route.take().unwrap_or_else(|| Route::Resolve(resolver.clone()));
        // Boxed, as is the INVITE below: a task's future takes the room of its largest state for its whole life,
        // and the compiler does not always lay the two over each other (docs/architecture.md, "Memory per call").
        match Box::pin(route.destination(&dialogs, &opt)).await {
            Ok(addr) => opt.destination = Some(addr),
            Err(reason) => {
                let _ = events.send(CallEvent::Failed { status: None, reason }).await;
                return;
            }
        }
        let next = Box::pin(invite_once(
            (&dialogs, &states),
            opt.clone(),
            &call_id,
            &session_header,
            redirects_left > 0,
            &events,
            &mut control,
        ))
        .await;
        match next {
            Some(Next::Retry422 { min_se }) => {
                // RFC 4028 §7.4: the far end wants a longer session: once more, at its Min-SE.
                if std::mem::replace(&mut retried_422, true) {
                    return;
                }
                let mut headers: Vec<rsipstack::sip::Header> = opt
                    .headers
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|h| {
                        !matches!(h, rsipstack::sip::Header::Other(n, _)
                        if n.eq_ignore_ascii_case("Session-Expires") || n.eq_ignore_ascii_case("Min-SE")
                            || (n.eq_ignore_ascii_case("Supported")))
                    })
                    .collect();
                headers.extend(crate::timer::request_headers(min_se, true));
                opt.headers = Some(headers);
                tracing::info!(call_id, "422: calling again with Session-Expires {min_se}");
            }
            Some(Next::Redirect(target)) => {
                redirects_left -= 1;
                match target.as_str().try_into() {
                    Ok(uri) => {
                        tracing::info!(call_id, "following a redirection to {target}");
                        opt.callee = uri;
                        opt.destination = None;
                    }
                    Err(e) => {
                        let _ = events
                            .send(CallEvent::Failed {
                                status: None,
                                reason: format!("bad redirection target {target}: {e}"),
                            })
                            .await;
                        return;
                    }
                }
            }
            None => return,
        }
    }
}

/// One INVITE and, when answered, its dialog until the end. Returns the redirection target when the answer was a
/// 3xx to follow.
async fn invite_once(
    (dialogs, states): (&Arc<DialogLayer>, &States),
    opt: InviteOption,
    call_id: &str,
    session_header: &str,
    follow: bool,
    events: &Events,
    control: &mut mpsc::UnboundedReceiver<Box<Control>>,
) -> Option<Next> {
    let mut states = states.subscribe(call_id);
    let mut ours =
        crate::reoffer::Ours::new(&String::from_utf8_lossy(opt.offer.as_deref().unwrap_or_default()));
    let (dialog, mut invite) = match dialogs.do_invite_async(opt, states.sender.clone()) {
        Ok(x) => x,
        Err(e) => {
            let _ = events
                .send(CallEvent::Failed {
                    status: None,
                    reason: e.to_string(),
                })
                .await;
            return None;
        }
    };
    let mut answered_id = None;
    let mut timer: Option<crate::timer::SessionTimer> = None;
    // The session refresh in flight, if any (one at a time).
    let mut refreshing: Option<oneshot::Receiver<Refreshed>> = None;
    // The dialog ended (a BYE right after our ACK) before the INVITE's 2xx was taken here.
    let mut ended_early = None;
    let mut invite_done = false;
    // The INVITE's final answer, held until the states the stack reported before it (a 180) have come through
    // the router: `answer_ready` once the mark sent behind them is back ([`States`]).
    let mut final_answer = None;
    let mut answer_ready = false;
    let mut hangup_sent = false;
    loop {
        tokio::select! {
            state = states.recv() => {
                let Some(state) = state else { break };
                if crate::states::is_mark(&state) {
                    answer_ready = true;
                    continue;
                }
                // The states of an earlier attempt of this call (same Call-ID, another From tag: a redirection,
                // a 422's retry) are not this dialog's.
                if state.id().local_tag != dialog.id().local_tag {
                    continue;
                }
                match state {
                    DialogState::Trying(_) => { let _ = events.send(CallEvent::Trying).await; }
                    DialogState::Early(_, resp) => {
                        let status = resp.status_code.code();
                        let early_media = !resp.body.is_empty();
                        let _ = events.send(CallEvent::Ringing { status, early_media }).await;
                    }
                    DialogState::Terminated(id, why) => {
                        dialogs.remove_dialog(&id);
                        let by_remote = matches!(why, TerminatedReason::UasBye);
                        if answered_id.is_some() {
                            let _ = events.send(CallEvent::Ended { by_remote, reason: None }).await;
                            break;
                        }
                        if !invite_done {
                            ended_early = Some(by_remote);
                        }
                    }
                    // A new offer from the far end (re-INVITE, UPDATE): answered at once (the media follows it), or
                    // refused with 488 when it has none of our codecs (the call goes on as before).
                    DialogState::Updated(_, req, handle) => {
                        let offer = String::from_utf8_lossy(&req.body).into_owned();
                        let answer = if offer.trim().is_empty() { Some(ours.current()) } else { ours.answer(&offer) };
                        let asked = req.header_value("Session-Expires");
                        match answer {
                            Some(answer) => {
                                let mut ct = vec![rsipstack::sip::Header::Other("Content-Type".into(), "application/sdp".into())];
                                // A refresh of the session (RFC 4028 §9): the timer starts again, and our 200 says
                                // the interval it takes.
                                if let Some(t) = timer.as_mut() {
                                    t.refreshed(asked.as_deref().and_then(crate::timer::parse));
                                }
                                if let Some(se) = asked {
                                    ct.push(rsipstack::sip::Header::Other("Session-Expires".into(), se));
                                    ct.push(rsipstack::sip::Header::Other("Require".into(), "timer".into()));
                                }
                                if let Err(e) = handle.respond(StatusCode::OK, Some(ct), Some(answer.into_bytes())).await {
                                    tracing::debug!(call_id, "cannot answer a re-INVITE: {e}");
                                }
                                if !offer.trim().is_empty() {
                                    let _ = events.send(CallEvent::MediaChanged { sdp: req.body.clone() }).await;
                                }
                            }
                            None => {
                                tracing::info!(call_id, "a new offer without a usable audio stream: 488");
                                if let Err(e) = handle.reply(StatusCode::NotAcceptableHere).await {
                                    tracing::debug!(call_id, "cannot refuse a re-INVITE: {e}");
                                }
                            }
                        }
                    }
                    DialogState::Notify(_, req, handle) => {
                        if let Some(progress) = transfer_progress(&req) {
                            let _ = events.send(progress).await;
                        }
                        if let Err(e) = handle.reply(StatusCode::OK).await {
                            tracing::debug!(call_id, "cannot answer a NOTIFY: {e}");
                        }
                    }
                    DialogState::Options(_, _, handle) | DialogState::Info(_, _, handle) => {
                        if let Err(e) = handle.reply(StatusCode::OK).await {
                            tracing::debug!(call_id, "cannot answer an in-dialog request: {e}");
                        }
                    }
                    DialogState::Refer(_, _, handle) | DialogState::Message(_, _, handle) | DialogState::Publish(_, _, handle) => {
                        if let Err(e) = handle.reply(StatusCode::MethodNotAllowed).await {
                            tracing::debug!(call_id, "cannot refuse an in-dialog request: {e}");
                        }
                    }
                    other => tracing::trace!(call_id, "dialog state {other}"),
                }
            }
            result = &mut invite, if final_answer.is_none() && !invite_done => {
                final_answer = Some(result);
                states.mark();
            }
            () = std::future::ready(()), if answer_ready && !invite_done => {
                invite_done = true;
                let Some(result) = final_answer.take() else { continue };
                match result {
                    Ok(Ok((id, Some(resp)))) if resp.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
                        if hangup_sent {
                            // Answered while we were cancelling: the stack ACKs and BYEs it.
                            dialogs.remove_dialog(&id);
                            let _ = events.send(CallEvent::Failed { status: None, reason: "cancelled".into() }).await;
                            break;
                        }
                        // RFC 7989: "<the far end's uuid>;remote=<ours>": the trunk's id is the first part.
                        let session_id = resp
                            .header_value(session_header)
                            .and_then(|v| v.split(';').next().map(|id| id.trim().to_string()))
                            .filter(|id| !id.is_empty());
                        answered_id = Some(id);
                        timer = crate::timer::SessionTimer::of_answer(&resp);
                        let saved = Box::new(crate::SavedDialog::of(&dialog.snapshot()));
                        let _ = events.send(CallEvent::Answered { sdp: resp.body.clone(), session_id, call_id: call_id.to_string(), dialog: saved }).await;
                        if let Some(by_remote) = ended_early {
                            let _ = events.send(CallEvent::Ended { by_remote, reason: None }).await;
                            break;
                        }
                    }
                    Ok(Ok((id, Some(resp)))) => {
                        dialogs.remove_dialog(&id);
                        let status = resp.status_code.code();
                        if follow && !hangup_sent && (300..400).contains(&status)
                            && let Some(target) = redirect_targets(&resp).into_iter().next()
                        {
                            return Some(Next::Redirect(target));
                        }
                        if status == 422 && !hangup_sent
                            && let Some(min_se) = resp.header_value("Min-SE")
                                .and_then(|v| v.split(';').next().and_then(|s| s.trim().parse::<u32>().ok()))
                        {
                            return Some(Next::Retry422 { min_se: min_se.max(crate::timer::MIN_SE) });
                        }
                        let reason = if hangup_sent && status == 487 { "cancelled".to_string() } else { reason_of(&resp) };
                        let _ = events.send(CallEvent::Failed { status: Some(status), reason }).await;
                        break;
                    }
                    Ok(Ok((id, None))) => {
                        dialogs.remove_dialog(&id);
                        let _ = events.send(CallEvent::Failed { status: None, reason: "no final response".into() }).await;
                        break;
                    }
                    Ok(Err(e)) => {
                        dialogs.remove_dialog(&dialog.id());
                        let _ = events.send(CallEvent::Failed { status: None, reason: e.to_string() }).await;
                        break;
                    }
                    Err(e) => {
                        dialogs.remove_dialog(&dialog.id());
                        let _ = events.send(CallEvent::Failed { status: None, reason: format!("INVITE task failed: {e}") }).await;
                        break;
                    }
                }
            }
            () = sleep_until(timer.as_ref().and_then(|t| t.deadline())), if answered_id.is_some() && !hangup_sent
                && timer.as_ref().is_some_and(|t| t.deadline().is_some()) => {
                let Some(t) = timer.as_mut() else { continue };
                if t.we_refresh {
                    t.refreshing();
                    let mut headers = crate::timer::request_headers(t.secs(), true);
                    let (tx, refreshed) = oneshot::channel();
                    refreshing = Some(refreshed);
                    let (d, update) = (dialog.clone(), t.use_update);
                    let body = (!update).then(|| {
                        headers.push(rsipstack::sip::Header::Other("Content-Type".into(), "application/sdp".into()));
                        ours.current().into_bytes()
                    });
                    tokio::spawn(async move {
                        let r = if update { d.update(Some(headers), None).await } else { d.reinvite(Some(headers), body).await };
                        let r = r
                            .map(|o| o.map(|resp| (resp.status_code.code(), resp.header_value("Session-Expires"))))
                            .map_err(|e| e.to_string());
                        let _ = tx.send(r);
                    });
                    continue;
                }
                let why = format!("session expired: the far end did not refresh it within {} s (RFC 4028)", t.secs());
                end_session(&dialog, dialogs, &mut answered_id, events, Some(why)).await;
                break;
            }
            result = once(&mut refreshing), if !hangup_sent => {
                match result.unwrap_or_else(|_| Err("the refresh's task ended".into())) {
                    Ok(Some((code, se))) if (200..300).contains(&code) => {
                        if let Some(t) = timer.as_mut() {
                            t.refreshed(se.as_deref().and_then(crate::timer::parse));
                        }
                    }
                    other => {
                        let what = match other {
                            Ok(Some((code, _))) => format!("answered {code}"),
                            Ok(None) => "no answer".to_string(),
                            Err(e) => e,
                        };
                        let why = format!("session refresh failed: {what} (RFC 4028)");
                        end_session(&dialog, dialogs, &mut answered_id, events, Some(why)).await;
                        break;
                    }
                }
            }
            // A hangup while the final answer waits for its mark is taken once it is known (BYE or CANCEL).
            cmd = control.recv(), if !hangup_sent && final_answer.is_none() => {
                match cmd.map(|c| *c) {
                    Some(Control::Refer { target, headers, reply }) => {
                        in_dialog(answered_id.is_some(), &dialog, reply, move |d| async move {
                            let refer_to = rsipstack::sip::ReferTo::from(format!("<{target}>"));
                            let extra: Vec<rsipstack::sip::Header> =
                                headers.into_iter().map(|(n, v)| rsipstack::sip::Header::Other(n, v)).collect();
                            d.refer(refer_to, (!extra.is_empty()).then_some(extra), None).await
                        });
                        continue;
                    }
                    Some(Control::Info { content_type, body, reply }) => {
                        in_dialog(answered_id.is_some(), &dialog, reply, move |d| async move {
                            let ct = vec![rsipstack::sip::Header::ContentType(content_type.into())];
                            d.info(Some(ct), Some(body)).await
                        });
                        continue;
                    }
                    Some(Control::Hangup) | None => {}
                }
                hangup_sent = true;
                if answered_id.is_some() {
                    end_session(&dialog, dialogs, &mut answered_id, events, None).await;
                    break;
                }
                if let Err(e) = dialog.cancel().await {
                    tracing::debug!(call_id, "CANCEL: {e}");
                }
            }
        }
    }
    None
}
