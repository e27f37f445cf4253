//! Outbound SIP calls. This is the only crate that names the SIP stack's types (rsipstack, pinned exactly):
//! everything else sees [`SipAgent`], [`CallRequest`], [`Call`] and our own [`CallEvent`]s. If the stack
//! fails us, the inside of this crate changes and its sipp suite stays.
//!
//! Pitfalls handled here (docs/architecture.md): we set our own Call-ID; every terminated dialog is removed from
//! the dialog layer (it leaks otherwise); in-dialog requests from the far end are routed to their dialog, and
//! anything else gets a correct answer (OPTIONS 200, stray requests 481) without touching other calls.

mod dialog;
pub mod encode;
mod probe;
mod reoffer;
mod resolver;
mod saved;
mod socket;
mod states;
mod timer;
mod tls;

pub use saved::SavedDialog;
pub use tls::{TlsClient, install_crypto_provider};

use dialog::{MAX_REDIRECTS, Route, drive};
use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Method, StatusCode};
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

/// Why an in-dialog request (REFER, INFO) was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the call has ended")]
    Ended,
    #[error("the call is not answered")]
    NotAnswered,
    /// A header the caller asked for cannot go into a SIP message as it is.
    #[error("transfer header {0:?} is not a valid SIP header")]
    BadHeader(String),
    #[error("no response")]
    NoResponse,
    /// The transaction failed (timeout, transport).
    #[error("{0}")]
    Transaction(String),
}

/// A snapshot of the SIP stack's tables ([`SipAgent::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SipStats {
    pub dialogs: usize,
    pub transactions: usize,
    pub finished_transactions: usize,
}

/// Why an OPTIONS probe got no final response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// What happens to an outbound call, in order. Exactly one of `Failed`, `Answered` comes for an INVITE;
/// after `Answered`, exactly one `Ended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 100 Trying.
    Trying,
    /// 180 / 183; `early_media` when the provisional response carried SDP.
    Ringing { status: u16, early_media: bool },
    /// 200 OK, ACKed; `dialog` is what the store keeps to end the call after a restart.
    Answered {
        sdp: Vec<u8>,
        session_id: Option<String>,
        call_id: String,
        dialog: Box<SavedDialog>,
    },
    /// The call never connected: a final response ≥ 300 (`status`), or a local failure (`status` None).
    Failed { status: Option<u16>, reason: String },
    /// The answered call ended; `by_remote` when the far end sent BYE (with its Reason header text, if any).
    Ended { by_remote: bool, reason: Option<String> },
    /// The far end sent a new offer in the dialog (re-INVITE / UPDATE) and it was answered: the media follows
    /// `sdp` (a new address or codec, or hold: `a=sendonly`, `a=inactive`, `c=0.0.0.0`).
    MediaChanged { sdp: Vec<u8> },
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
    /// Session timer (RFC 4028): the `Session-Expires` to ask for, in seconds (at least 90); None: no timer.
    pub session_expires: Option<u32>,
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

type Reply = tokio::sync::oneshot::Sender<Result<u16, RequestError>>;

#[derive(Debug)]
enum Control {
    /// CANCEL before the answer, BYE after it.
    Hangup,
    /// REFER in the answered dialog (blind transfer).
    Refer {
        target: String,
        headers: Vec<(String, String)>,
        reply: Reply,
    },
    /// INFO in the answered dialog.
    Info {
        content_type: String,
        body: Vec<u8>,
        reply: Reply,
    },
}

/// A call in progress: its events, and the means to end it.
pub struct Call {
    /// Boxed: a channel holds a block of 32 of its messages for the whole call (docs/architecture.md, "Memory
    /// per call").
    pub events: mpsc::Receiver<Box<CallEvent>>,
    control: CallControl,
}

impl std::ops::Deref for Call {
    type Target = CallControl;
    fn deref(&self) -> &CallControl {
        &self.control
    }
}

impl Call {
    /// A handle that controls the call from elsewhere (a task waiting for a REFER's answer).
    pub fn control(&self) -> CallControl {
        self.control.clone()
    }
}

/// The means to act on a call: its requests are never dropped (an unbounded queue to the dialog's task).
#[derive(Clone)]
pub struct CallControl {
    control: mpsc::UnboundedSender<Box<Control>>,
}

impl CallControl {
    /// Ends the call: CANCEL while it is not answered (a 200 that crosses the CANCEL is ACKed and BYE'd by the
    /// stack), BYE once it is. The outcome still arrives as an event. Returns at once.
    pub fn hangup(&self) {
        let _ = self.control.send(Box::new(Control::Hangup));
    }

    /// Asks the far end to transfer the call to `target` (a SIP URI; REFER, RFC 3515). Returns the REFER's
    /// final status (202: accepted); the transfer's progress then arrives as [`CallEvent::TransferProgress`].
    pub async fn refer(&self, target: &str) -> Result<u16, RequestError> {
        self.refer_with(target, Vec::new()).await
    }

    /// REFER with extra headers (the bot's `transferSipHeaders`); names and values are checked as tokens and
    /// header text (no line breaks), so a bot cannot inject headers of its own.
    pub async fn refer_with(
        &self,
        target: &str,
        headers: Vec<(String, String)>,
    ) -> Result<u16, RequestError> {
        for (n, v) in &headers {
            let token = !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !token || v.contains(['\r', '\n']) {
                return Err(RequestError::BadHeader(n.clone()));
            }
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let target = target.to_string();
        self.request(
            Control::Refer {
                target,
                headers,
                reply,
            },
            answer,
        )
        .await
    }

    /// Sends INFO with this body (e.g. `application/dtmf-relay`) and returns the final status.
    pub async fn send_info(&self, content_type: &str, body: Vec<u8>) -> Result<u16, RequestError> {
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
        answer: tokio::sync::oneshot::Receiver<Result<u16, RequestError>>,
    ) -> Result<u16, RequestError> {
        self.control
            .send(Box::new(cmd))
            .map_err(|_| RequestError::Ended)?;
        answer.await.map_err(|_| RequestError::Ended)?
    }
}

/// The SIP user agent of the gateway.
pub struct SipAgent {
    dialogs: Arc<DialogLayer>,
    states: Arc<states::States>,
    local: SocketAddr,
    tls: Arc<tls::TlsConnections>,
    resolver: resolver::Resolver,
    cancel: CancellationToken,
}

/// The methods the INVITE's `Allow` lists: those the dialog answers (REFER and MESSAGE are refused in the dialog;
/// we send REFER ourselves).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE";

/// How long an in-dialog request that matches no dialog waits for one (a dialog is registered microseconds after
/// its ACK leaves, but a BYE sent the moment the ACK arrives can get here first).
const DIALOG_RACE: std::time::Duration = std::time::Duration::from_millis(300);

/// The dialog of an in-dialog request (both tags present) once the stack has registered it, within
/// [`DIALOG_RACE`]; `None` for anything else.
async fn wait_for_dialog(
    router: &DialogLayer,
    tx: &rsipstack::transaction::Transaction,
) -> Option<rsipstack::dialog::dialog::Dialog> {
    rsipstack::dialog::DialogId::try_from(tx).ok()?;
    let deadline = tokio::time::Instant::now() + DIALOG_RACE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if let Some(dialog) = router.match_dialog(tx) {
            return Some(dialog);
        }
    }
    None
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
        let socket = socket::udp_socket(listen).map_err(|e| SipError::Listen(listen, e.to_string()))?;
        let udp = UdpConnection::from_socket(Arc::new(socket), None, Some(cancel.child_token()))
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
                let router = router.clone();
                tokio::spawn(async move {
                    let status = match method {
                        Method::Options => StatusCode::OK,
                        Method::Ack => return,
                        _ => {
                            // An in-dialog request (a To tag) can race the dialog's confirmation: a BYE sent the
                            // moment our ACK arrives reaches us before the stack has registered the dialog. It
                            // waits for the dialog a little before it is answered 481 (docs/trunks.md).
                            if let Some(mut dialog) = wait_for_dialog(&router, &tx).await {
                                if let Err(e) = dialog.handle(&mut tx).await {
                                    tracing::debug!("in-dialog request not handled: {e}");
                                }
                                return;
                            }
                            StatusCode::CallTransactionDoesNotExist
                        }
                    };
                    if let Err(e) = tx.reply(status).await {
                        tracing::debug!("cannot answer a stray {method} request: {e}");
                    }
                });
            }
        });
        Ok(Arc::new(SipAgent {
            dialogs,
            states: Arc::new(states::States::spawn(cancel.clone())),
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
    ) -> Result<u16, ProbeError> {
        let to = if transport == SipTransport::Tls {
            self.tls
                .connect(&self.dialogs.endpoint.transport_layer, destination, tls)
                .await
                .map_err(ProbeError)?
        } else {
            let hp: rsipstack::sip::HostWithPort = destination
                .try_into()
                .map_err(|e| ProbeError(format!("invalid destination {destination}: {e}")))?;
            SipAddr::new(transport.stack(), hp)
        };
        probe::options(&self.dialogs, to, from_host, timeout)
            .await
            .map_err(ProbeError)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Number of dialogs the stack still tracks (must return to 0: no leak).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// What the stack holds now: dialogs, and transactions running or finished (kept to answer retransmissions).
    /// An answered call's INVITE transaction lives 32 s after its 2xx (RFC 6026 Timer M), so at a steady call
    /// rate about `rate × 32` of them are alive: that window, not a leak, is most of the memory after a burst of
    /// calls (BENCHMARKS.md, "Memory over a soak").
    pub fn stats(&self) -> SipStats {
        let s = self.dialogs.endpoint.get_stats();
        SipStats {
            dialogs: self.dialogs.len(),
            transactions: s.running_transactions,
            finished_transactions: s.finished_transactions,
        }
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
        // The user part is set as a value: the stack's URI encoder %-escapes what the grammar does not allow, so a
        // caller can never end the user part early.
        let with_user = |host: &str, what: &'static str| -> Result<rsipstack::sip::Uri, SipError> {
            let s = format!("sip:{host}");
            let mut uri: rsipstack::sip::Uri = s.as_str().try_into().map_err(|e| invalid(what, &s, &e))?;
            uri.auth = Some(rsipstack::sip::uri::Auth {
                user: req.from_user.clone(),
                password: None,
            });
            Ok(uri)
        };
        if req.from_user.starts_with([';', '?']) {
            let why = "a user part cannot start with ';' or '?' (read as URI parameters or headers)";
            return Err(invalid("caller", &req.from_user, &why));
        }
        let caller = with_user(&req.from_host, "caller")?;
        let contact = with_user(&self.local.to_string(), "contact")?;
        let destination = match &req.destination {
            Some(d) => {
                let hp: rsipstack::sip::HostWithPort =
                    d.as_str().try_into().map_err(|e| invalid("destination", d, &e))?;
                Some(SipAddr::new(req.transport.stack(), hp))
            }
            None => None,
        };
        // The methods we answer in the dialog (docs/trunks.md, "What outdial sends").
        let headers = std::iter::once(rsipstack::sip::Header::Other("Allow".into(), ALLOW.into()))
            .chain(
                req.session_expires
                    .map(|se| timer::request_headers(se.max(timer::MIN_SE), true))
                    .into_iter()
                    .flatten(),
            )
            .chain(
                req.headers
                    .iter()
                    .filter(|(n, _)| !n.eq_ignore_ascii_case("allow"))
                    .map(|(n, v)| rsipstack::sip::Header::Other(n.clone(), v.clone())),
            )
            .collect::<Vec<_>>();
        let display_name = req
            .display_name
            .as_deref()
            .map(encode::quoted_string)
            .transpose()?;
        let opt = InviteOption {
            caller_display_name: display_name,
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
        let (control, control_rx) = mpsc::unbounded_channel();
        let dialogs = (self.dialogs.clone(), self.states.clone());
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
        tokio::spawn(drive(
            dialogs,
            opt,
            (route, resolver),
            req.call_id,
            session_header,
            redirects,
            dialog::Events(events_tx),
            control_rx,
        ));
        Ok(Call {
            events,
            control: CallControl { control },
        })
    }
}

impl Drop for SipAgent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
