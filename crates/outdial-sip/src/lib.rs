//! Outbound SIP calls. This is the only crate that names the SIP stack's types (rsipstack, pinned exactly):
//! everything else sees [`SipAgent`], [`CallRequest`], [`Call`] and our own [`CallEvent`]s. If the stack
//! fails us, the inside of this crate changes and its sipp suite stays.
//!
//! Pitfalls handled here (ARCHITECTURE.md): we set our own Call-ID; every terminated dialog is removed from
//! the dialog layer (it leaks otherwise); in-dialog requests from the far end are routed to their dialog, and
//! anything else gets a correct answer (OPTIONS 200, stray requests 481) without touching other calls.

mod probe;
mod resolver;
mod tls;

pub use tls::{TlsClient, install_crypto_provider};

use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{HeadersExt as _, Method, StatusCode};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot listen for SIP on {0}: {1}")]
    Listen(SocketAddr, String),
    #[error("invalid {what} '{value}': {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
}

/// What happens to an outbound call, in order. Exactly one of `Failed`, `Answered` comes for an INVITE;
/// after `Answered`, exactly one `Ended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 100 Trying.
    Trying,
    /// 180 / 183; `early_media` when the provisional response carried SDP.
    Ringing { status: u16, early_media: bool },
    /// 200 OK, ACKed.
    Answered {
        sdp: Vec<u8>,
        session_id: Option<String>,
        call_id: String,
    },
    /// The call never connected: a final response ≥ 300 (`status`), or a local failure (`status` None).
    Failed { status: Option<u16>, reason: String },
    /// The answered call ended; `by_remote` when the far end sent BYE (with its Reason header text, if any).
    Ended { by_remote: bool, reason: Option<String> },
    /// Progress of a transfer we asked for with [`Call::refer`]: the status line of the far end's NOTIFY
    /// (`message/sipfrag`), `done` when its subscription is terminated.
    TransferProgress { status: u16, done: bool },
}

/// An outbound INVITE.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// Request-URI, `sip:…` or `sips:…`.
    pub target: String,
    /// Where to send it (`host:port`); the target's host when None.
    pub destination: Option<String>,
    pub from_user: String,
    pub from_host: String,
    pub display_name: Option<String>,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
    pub sdp: Option<Vec<u8>>,
    /// Digest credentials (user, password, realm) for 401/407.
    pub credential: Option<(String, String, Option<String>)>,
    pub call_id: String,
    /// Response header carrying the trunk's session id (default `Session-ID`).
    pub session_id_header: Option<String>,
    /// Follow 3xx redirections (Contact order by q, at most 3 hops).
    pub follow_redirects: bool,
    /// Transport towards `destination`.
    pub transport: SipTransport,
    /// How to verify the far end when `transport` is TLS.
    pub tls: TlsClient,
}

/// The transports a call can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    fn stack(self) -> rsipstack::sip::Transport {
        match self {
            SipTransport::Udp => rsipstack::sip::Transport::Udp,
            SipTransport::Tcp => rsipstack::sip::Transport::Tcp,
            SipTransport::Tls => rsipstack::sip::Transport::Tls,
        }
    }
}

/// How the agent listens and resolves.
#[derive(Debug, Clone)]
pub struct SipOptions {
    /// UDP and TCP on this address and port.
    pub listen: SocketAddr,
    /// DNS servers (`ip:port`) for trunk addresses; the system's when empty.
    pub nameservers: Vec<SocketAddr>,
}

type Reply = tokio::sync::oneshot::Sender<Result<u16, String>>;

#[derive(Debug)]
enum Control {
    /// CANCEL before the answer, BYE after it.
    Hangup,
    /// REFER in the answered dialog (blind transfer).
    Refer { target: String, reply: Reply },
    /// INFO in the answered dialog.
    Info {
        content_type: String,
        body: Vec<u8>,
        reply: Reply,
    },
}

/// A call in progress: its events, and the means to end it.
pub struct Call {
    pub events: mpsc::Receiver<CallEvent>,
    control: mpsc::Sender<Control>,
}

impl Call {
    /// Ends the call: CANCEL while it is not answered (a 200 that crosses the CANCEL is ACKed and BYE'd by the
    /// stack), BYE once it is. The outcome still arrives as an event.
    pub async fn hangup(&self) {
        let _ = self.control.send(Control::Hangup).await;
    }

    /// Asks the far end to transfer the call to `target` (a SIP URI; REFER, RFC 3515). Returns the REFER's
    /// final status (202: accepted); the transfer's progress then arrives as [`CallEvent::TransferProgress`].
    pub async fn refer(&self, target: &str) -> Result<u16, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let target = target.to_string();
        self.request(Control::Refer { target, reply }, answer).await
    }

    /// Sends INFO with this body (e.g. `application/dtmf-relay`) and returns the final status.
    pub async fn send_info(&self, content_type: &str, body: Vec<u8>) -> Result<u16, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let content_type = content_type.to_string();
        self.request(
            Control::Info {
                content_type,
                body,
                reply,
            },
            answer,
        )
        .await
    }

    async fn request(
        &self,
        cmd: Control,
        answer: tokio::sync::oneshot::Receiver<Result<u16, String>>,
    ) -> Result<u16, String> {
        self.control
            .send(cmd)
            .await
            .map_err(|_| "the call has ended".to_string())?;
        answer.await.map_err(|_| "the call has ended".to_string())?
    }
}

/// The SIP user agent of the gateway.
pub struct SipAgent {
    dialogs: Arc<DialogLayer>,
    local: SocketAddr,
    tls: Arc<tls::TlsConnections>,
    resolver: resolver::Resolver,
    cancel: CancellationToken,
}

impl SipAgent {
    /// Listens on UDP and TCP at `listen` with the system's DNS and starts serving.
    pub async fn start(listen: SocketAddr) -> Result<Arc<SipAgent>, SipError> {
        Self::start_with(SipOptions {
            listen,
            nameservers: Vec::new(),
        })
        .await
    }

    /// Listens on UDP and TCP at `opts.listen` and starts serving.
    pub async fn start_with(opts: SipOptions) -> Result<Arc<SipAgent>, SipError> {
        let listen = opts.listen;
        install_crypto_provider();
        let cancel = CancellationToken::new();
        let resolver = resolver::Resolver::new(&opts.nameservers).map_err(|e| SipError::Invalid {
            what: "DNS configuration",
            value: format!("{:?}", opts.nameservers),
            why: e,
        })?;
        let tls = Arc::new(tls::TlsConnections::new(resolver.clone(), cancel.child_token()));
        let transport = TransportLayer::new_with_domain_resolver(cancel.clone(), Box::new(resolver.clone()));
        transport.set_tls_config(tls.system_config());
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .map_err(|e| SipError::Listen(listen, e.to_string()))?;
        let local = udp
            .get_addr()
            .get_socketaddr()
            .map_err(|e| SipError::Listen(listen, e.to_string()))?;
        transport.add_transport(udp.into());
        // TCP on the same address and port: outbound connections to TCP trunks, and their requests back to us.
        let tcp = rsipstack::transport::TcpListenerConnection::new(local, None)
            .await
            .map_err(|e| SipError::Listen(local, format!("tcp: {e}")))?;
        transport.add_transport(tcp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Listen(listen, e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let serve_cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = endpoint.serve() => tracing::warn!("SIP endpoint stopped"),
                _ = serve_cancel.cancelled() => {}
            }
        });
        let router = dialogs.clone();
        tokio::spawn(async move {
            while let Some(mut tx) = incoming.recv().await {
                if let Some(mut dialog) = router.match_dialog(&tx) {
                    tokio::spawn(async move {
                        if let Err(e) = dialog.handle(&mut tx).await {
                            tracing::debug!("in-dialog request not handled: {e}");
                        }
                    });
                    continue;
                }
                let method = tx.original.method;
                tokio::spawn(async move {
                    let status = match method {
                        Method::Options => StatusCode::OK,
                        Method::Ack => return,
                        _ => StatusCode::CallTransactionDoesNotExist,
                    };
                    if let Err(e) = tx.reply(status).await {
                        tracing::debug!("cannot answer a stray {method} request: {e}");
                    }
                });
            }
        });
        Ok(Arc::new(SipAgent {
            dialogs,
            local,
            tls,
            resolver,
            cancel,
        }))
    }

    /// Sends OPTIONS to `destination` (`host[:port]`) and returns the final response's status; an error when
    /// nothing answers within `timeout` or the transport fails.
    pub async fn probe(
        &self,
        destination: &str,
        transport: SipTransport,
        tls: &TlsClient,
        from_host: &str,
        timeout: std::time::Duration,
    ) -> Result<u16, String> {
        let to = if transport == SipTransport::Tls {
            self.tls
                .connect(&self.dialogs.endpoint.transport_layer, destination, tls)
                .await?
        } else {
            let hp: rsipstack::sip::HostWithPort = destination
                .try_into()
                .map_err(|e| format!("invalid destination {destination}: {e}"))?;
            SipAddr::new(transport.stack(), hp)
        };
        probe::options(&self.dialogs, to, from_host, timeout).await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Number of dialogs the stack still tracks (must return to 0: no leak).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Sends an INVITE; the call's events arrive on [`Call::events`].
    pub fn call(&self, req: CallRequest) -> Result<Call, SipError> {
        let invalid = |what: &'static str, value: &str, e: &dyn std::fmt::Display| SipError::Invalid {
            what,
            value: value.to_string(),
            why: e.to_string(),
        };
        let callee: rsipstack::sip::Uri = req
            .target
            .as_str()
            .try_into()
            .map_err(|e| invalid("target", &req.target, &e))?;
        let caller_s = format!("sip:{}@{}", req.from_user, req.from_host);
        let caller: rsipstack::sip::Uri = caller_s
            .as_str()
            .try_into()
            .map_err(|e| invalid("caller", &caller_s, &e))?;
        let contact_s = format!("sip:{}@{}", req.from_user, self.local);
        let contact: rsipstack::sip::Uri = contact_s
            .as_str()
            .try_into()
            .map_err(|e| invalid("contact", &contact_s, &e))?;
        let destination = match &req.destination {
            Some(d) => {
                let hp: rsipstack::sip::HostWithPort =
                    d.as_str().try_into().map_err(|e| invalid("destination", d, &e))?;
                Some(SipAddr::new(req.transport.stack(), hp))
            }
            None => None,
        };
        let headers = req
            .headers
            .iter()
            .map(|(n, v)| rsipstack::sip::Header::Other(n.clone(), v.clone()))
            .collect::<Vec<_>>();
        let opt = InviteOption {
            caller_display_name: req.display_name.clone(),
            caller,
            callee,
            destination,
            content_type: req.sdp.as_ref().map(|_| "application/sdp".to_string()),
            offer: req.sdp.clone(),
            contact,
            credential: req
                .credential
                .clone()
                .map(|(username, password, realm)| Credential {
                    username,
                    password,
                    realm,
                    auth_username: None,
                }),
            headers: if headers.is_empty() { None } else { Some(headers) },
            call_id: Some(req.call_id.clone()),
            ..Default::default()
        };
        let (events_tx, events) = mpsc::channel(16);
        let (control, control_rx) = mpsc::channel(4);
        let dialogs = self.dialogs.clone();
        let session_header = req
            .session_id_header
            .clone()
            .unwrap_or_else(|| "Session-ID".into());
        let redirects = if req.follow_redirects { MAX_REDIRECTS } else { 0 };
        let route = match (&req.destination, req.transport) {
            (Some(d), SipTransport::Tls) => Route::Tls(self.tls.clone(), d.clone(), req.tls.clone()),
            _ => Route::Resolve(self.resolver.clone()),
        };
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            drive(
                dialogs,
                opt,
                (route, resolver),
                req.call_id,
                session_header,
                redirects,
                events_tx,
                control_rx,
            )
            .await;
        });
        Ok(Call { events, control })
    }
}

impl Drop for SipAgent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

const MAX_REDIRECTS: u8 = 3;

/// How a call's destination is found. It is resolved (and a TLS connection opened with the trunk's own roots
/// and name) before each INVITE, so that a name that does not resolve fails the call at once rather than after
/// the stack's 32 s of retransmissions.
enum Route {
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

/// Our SDP answer to a re-offer: our session with the direction that mirrors theirs (RFC 3264 §6.1): a callee that
/// holds with `sendonly` gets `recvonly`, `inactive` gets `inactive`, otherwise `sendrecv`.
fn answer_sdp(ours: &str, offer: &str) -> String {
    let theirs = offer.lines().map(str::trim).find_map(|l| match l {
        "a=sendonly" => Some("a=recvonly"),
        "a=recvonly" => Some("a=sendonly"),
        "a=inactive" => Some("a=inactive"),
        "a=sendrecv" => Some("a=sendrecv"),
        _ => None,
    });
    let direction = theirs.unwrap_or("a=sendrecv");
    ours.lines()
        .filter(|l| {
            !matches!(
                l.trim(),
                "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
            )
        })
        .map(|l| format!("{}\r\n", l.trim_end()))
        .chain(std::iter::once(format!("{direction}\r\n")))
        .collect()
}

/// Runs an in-dialog request in its own task (the call's loop keeps serving the dialog meanwhile) and replies
/// with the final status.
fn in_dialog<F, Fut>(answered: bool, dialog: &InviteDialog, reply: Reply, send: F)
where
    F: FnOnce(InviteDialog) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = rsipstack::Result<Option<rsipstack::sip::Response>>> + Send,
{
    if !answered {
        let _ = reply.send(Err("the call is not answered".into()));
        return;
    }
    let dialog = dialog.clone();
    tokio::spawn(async move {
        let result = match send(dialog).await {
            Ok(Some(resp)) => Ok(resp.status_code.code()),
            Ok(None) => Err("no response".to_string()),
            Err(e) => Err(e.to_string()),
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
async fn drive(
    dialogs: Arc<DialogLayer>,
    mut opt: InviteOption,
    (first, resolver): (Route, resolver::Resolver),
    call_id: String,
    session_header: String,
    mut redirects_left: u8,
    events: mpsc::Sender<CallEvent>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut route = Some(first);
    loop {
        let route = route.take().unwrap_or_else(|| Route::Resolve(resolver.clone()));
        match route.destination(&dialogs, &opt).await {
            Ok(addr) => opt.destination = Some(addr),
            Err(reason) => {
                let _ = events.send(CallEvent::Failed { status: None, reason }).await;
                return;
            }
        }
        let next = invite_once(
            &dialogs,
            opt.clone(),
            &call_id,
            &session_header,
            redirects_left > 0,
            &events,
            &mut control,
        )
        .await;
        match next {
            Some(target) => {
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
    dialogs: &Arc<DialogLayer>,
    opt: InviteOption,
    call_id: &str,
    session_header: &str,
    follow: bool,
    events: &mpsc::Sender<CallEvent>,
    control: &mut mpsc::Receiver<Control>,
) -> Option<String> {
    let (state_tx, mut states) = dialogs.new_dialog_state_channel();
    let our_sdp = String::from_utf8_lossy(opt.offer.as_deref().unwrap_or_default()).into_owned();
    let (dialog, mut invite) = match dialogs.do_invite_async(opt, state_tx) {
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
    let mut invite_done = false;
    let mut hangup_sent = false;
    loop {
        tokio::select! {
            state = states.recv() => {
                let Some(state) = state else { break };
                match state {
                    DialogState::Trying(_) => { let _ = events.send(CallEvent::Trying).await; }
                    DialogState::Early(_, resp) => {
                        let status = resp.status_code.code();
                        let early_media = !resp.body.is_empty();
                        let _ = events.send(CallEvent::Ringing { status, early_media }).await;
                    }
                    DialogState::Terminated(id, why) => {
                        dialogs.remove_dialog(&id);
                        if answered_id.is_some() {
                            let by_remote = matches!(why, TerminatedReason::UasBye);
                            let _ = events.send(CallEvent::Ended { by_remote, reason: None }).await;
                            break;
                        }
                    }
                    // In-dialog requests from the far end wait for our answer: a hold re-INVITE keeps the call.
                    DialogState::Updated(_, req, handle) => {
                        let answer = answer_sdp(&our_sdp, &String::from_utf8_lossy(&req.body));
                        let ct = vec![rsipstack::sip::Header::Other("Content-Type".into(), "application/sdp".into())];
                        if let Err(e) = handle.respond(StatusCode::OK, Some(ct), Some(answer.into_bytes())).await {
                            tracing::debug!(call_id, "cannot answer a re-INVITE: {e}");
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
            result = &mut invite, if !invite_done => {
                invite_done = true;
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
                        let _ = events.send(CallEvent::Answered { sdp: resp.body.clone(), session_id, call_id: call_id.to_string() }).await;
                    }
                    Ok(Ok((id, Some(resp)))) => {
                        dialogs.remove_dialog(&id);
                        let status = resp.status_code.code();
                        if follow && !hangup_sent && (300..400).contains(&status)
                            && let Some(target) = redirect_targets(&resp).into_iter().next()
                        {
                            return Some(target);
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
            cmd = control.recv(), if !hangup_sent => {
                match cmd {
                    Some(Control::Refer { target, reply }) => {
                        in_dialog(answered_id.is_some(), &dialog, reply, move |d| async move {
                            let refer_to = rsipstack::sip::ReferTo::from(format!("<{target}>"));
                            d.refer(refer_to, None, None).await
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
                let r = if answered_id.is_some() { dialog.hangup().await } else { dialog.cancel().await };
                if let Err(e) = r {
                    tracing::debug!(call_id, "hang-up: {e}");
                }
                if let Some(id) = &answered_id {
                    dialogs.remove_dialog(id);
                    let _ = events.send(CallEvent::Ended { by_remote: false, reason: None }).await;
                    break;
                }
            }
        }
    }
    None
}
