//! The INVITE of a conversation: Request-URI from the target, From from the caller fields, the trunk's headers
//! and credentials, and where it goes (the trunk's outbound proxy or address, over its transport, TLS verified by
//! its CA file and server name).

use outdial_core::dialout::callee_of;
use outdial_core::{Conversation, Trunk};
use outdial_sip::{CallRequest, SipTransport, TlsClient};

/// A trunk's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the tlsCaFile {path} of trunk '{trunk}': {why}")]
pub struct InviteError {
    path: String,
    trunk: String,
    why: std::io::Error,
}

/// `host[:port]` of a trunk address or proxy (`sip:` prefix and parameters removed).
fn host_port(address: &str) -> &str {
    let a = address
        .strip_prefix("sips:")
        .or_else(|| address.strip_prefix("sip:"))
        .unwrap_or(address);
    a.split(';').next().unwrap_or(a)
}

/// Where a trunk's requests go (`host[:port]` of its outbound proxy, else its address), over which transport,
/// verified how (TLS).
pub(crate) fn route(trunk: &Trunk) -> Result<(String, SipTransport, TlsClient), InviteError> {
    let destination = host_port(trunk.outbound_proxy.as_deref().unwrap_or(&trunk.address)).to_string();
    Ok(match trunk.transport {
        outdial_core::Transport::Udp => (destination, SipTransport::Udp, TlsClient::default()),
        outdial_core::Transport::Tcp => (destination, SipTransport::Tcp, TlsClient::default()),
        outdial_core::Transport::Tls => (destination, SipTransport::Tls, tls_of(trunk)?),
    })
}

/// How to verify a TLS trunk: its CA file (read at each call, so a renewed file is picked up) and server name.
fn tls_of(trunk: &Trunk) -> Result<TlsClient, InviteError> {
    let ca_pem = match &trunk.tls_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|why| InviteError {
            path: path.clone(),
            trunk: trunk.name.clone(),
            why,
        })?),
        None => None,
    };
    Ok(TlsClient {
        ca_pem,
        server_name: trunk.tls_server_name.clone(),
    })
}

/// The INVITE for a conversation through a trunk.
pub(crate) fn request(
    conv: &Conversation,
    trunk: &Trunk,
    offer: String,
    local_host: &str,
) -> Result<CallRequest, InviteError> {
    let target = &conv.request.target;
    let trunk_host = host_port(&trunk.address);
    let uri = if target.starts_with("tel:") {
        format!("sip:{}@{trunk_host};user=phone", callee_of(target))
    } else {
        target.clone()
    };
    let (destination, transport, tls) = route(trunk)?;
    Ok(CallRequest {
        target: uri,
        destination: Some(destination),
        from_user: conv.request.caller.clone().unwrap_or_else(|| "anonymous".into()),
        from_host: conv
            .request
            .caller_host
            .clone()
            .or_else(|| trunk.caller_host.clone())
            .unwrap_or_else(|| local_host.to_string()),
        display_name: conv.request.caller_display_name.clone(),
        headers: trunk
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        sdp: Some(offer.into_bytes()),
        credential: trunk
            .username
            .clone()
            .map(|u| (u, trunk.password.clone().unwrap_or_default(), trunk.realm.clone())),
        call_id: format!("{}@outdial", conv.id.simple()),
        session_id_header: trunk.session_id_header.clone(),
        session_expires: (trunk.session_timer_sec > 0).then_some(trunk.session_timer_sec),
        follow_redirects: trunk.follow_redirects,
        transport,
        tls,
    })
}
