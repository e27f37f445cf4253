//! Out-of-dialog OPTIONS: the trunk keep-alive. Any final response proves the trunk is alive (many SBCs
//! answer OPTIONS with 404 or 405); a timeout or a transport error does not.

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Method, SipMessage, StatusCodeKind, Transport};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use std::time::Duration;

/// Sends OPTIONS to `to` (already resolved for TLS) and waits up to `timeout` for a final response.
pub(crate) async fn options(
    dialogs: &DialogLayer,
    to: SipAddr,
    from_host: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let endpoint = dialogs.endpoint.clone();
    let scheme = if to.r#type == Some(Transport::Tls) {
        ";transport=tls"
    } else if to.r#type == Some(Transport::Tcp) {
        ";transport=tcp"
    } else {
        ""
    };
    let uri_s = format!("sip:{}{scheme}", to.addr);
    let uri: rsipstack::sip::Uri = uri_s
        .as_str()
        .try_into()
        .map_err(|e| format!("invalid OPTIONS target {uri_s}: {e}"))?;
    let from_s = format!("sip:outdial@{from_host}");
    let from_uri: rsipstack::sip::Uri = from_s
        .as_str()
        .try_into()
        .map_err(|e| format!("invalid From {from_s}: {e}"))?;
    let (conn, resolved) = endpoint
        .transport_layer
        .lookup(&to, None)
        .await
        .map_err(|e| format!("no route to {}: {e}", to.addr))?;
    let via = endpoint
        .get_via(Some(conn.get_addr().clone()), None)
        .map_err(|e| e.to_string())?;
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: from_uri,
        params: vec![],
    }
    .with_tag(make_tag());
    let to_h = rsipstack::sip::typed::To {
        display_name: None,
        uri: uri.clone(),
        params: vec![],
    };
    let req = endpoint.make_request(Method::Options, uri, via, from, to_h, 1, None);
    let key = TransactionKey::from_request(&req, TransactionRole::Client).map_err(|e| e.to_string())?;
    let mut tx = Transaction::new_client(key, req, endpoint.clone(), Some(conn));
    tx.destination = Some(resolved);
    let exchange = async {
        tx.send().await.map_err(|e| format!("OPTIONS not sent: {e}"))?;
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(resp) = msg
                && resp.status_code.kind() != StatusCodeKind::Provisional
            {
                return Ok(resp.status_code.code());
            }
        }
        Err("OPTIONS transaction ended without a response".to_string())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer to OPTIONS within {} ms", timeout.as_millis()))?
}
