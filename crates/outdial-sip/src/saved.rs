//! An answered call's dialog as the store keeps it (docs/operations.md, "What happens when … the gateway is
//! killed"): Call-ID, tags, From and To, the remote target, the route set and the CSeq numbers — enough for a
//! restarted gateway (or another node of a cluster) to end the call with an in-dialog BYE, so that the far end does
//! not hold (and bill) a call nobody serves.

use crate::{SipAgent, SipError};
use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{Dialog, DialogSnapshot, DialogSnapshotState};
use rsipstack::sip::typed::{From, Route, To};
use rsipstack::transaction::key::TransactionRole;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedDialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The `From` and `To` header values of the dialog.
    pub from: String,
    pub to: String,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub local_contact: Option<String>,
    /// Where in-dialog requests go (the far end's Contact).
    pub remote_uri: String,
    pub remote_contact: Option<String>,
    /// `Route` values, in the order requests carry them.
    pub route_set: Vec<String>,
}

fn bad(what: &'static str, value: &str, e: impl std::fmt::Display) -> SipError {
    SipError::Invalid {
        what,
        value: value.to_string(),
        why: e.to_string(),
    }
}

impl SavedDialog {
    pub(crate) fn of(s: &DialogSnapshot) -> SavedDialog {
        SavedDialog {
            call_id: s.id.call_id.clone(),
            local_tag: s.id.local_tag.clone(),
            remote_tag: s.id.remote_tag.clone(),
            from: s.from.to_string(),
            to: s.to.to_string(),
            local_cseq: s.local_cseq,
            remote_cseq: s.remote_cseq,
            local_contact: s.local_contact.as_ref().map(ToString::to_string),
            remote_uri: s.remote_uri.to_string(),
            remote_contact: s.remote_contact.as_ref().map(|c| c.0.clone()),
            route_set: s.route_set.iter().map(|r| r.value().to_string()).collect(),
        }
    }

    fn snapshot(&self) -> Result<DialogSnapshot, SipError> {
        let uri = |what, s: &str| -> Result<rsipstack::sip::Uri, SipError> {
            s.try_into().map_err(|e| bad(what, s, e))
        };
        Ok(DialogSnapshot {
            state: DialogSnapshotState::Confirmed,
            role: TransactionRole::Client,
            id: DialogId {
                call_id: self.call_id.clone(),
                local_tag: self.local_tag.clone(),
                remote_tag: self.remote_tag.clone(),
            },
            from: From::parse(&self.from).map_err(|e| bad("From", &self.from, e))?,
            to: To::parse(&self.to).map_err(|e| bad("To", &self.to, e))?,
            local_cseq: self.local_cseq,
            remote_cseq: self.remote_cseq,
            local_contact: self
                .local_contact
                .as_deref()
                .map(|c| uri("Contact", c))
                .transpose()?,
            remote_uri: uri("remote target", &self.remote_uri)?,
            remote_contact: self
                .remote_contact
                .clone()
                .map(rsipstack::sip::headers::untyped::Contact),
            route_set: self
                .route_set
                .iter()
                .map(|r| {
                    Route::parse(r)
                        .map(|_| rsipstack::sip::Route::from(r.clone()))
                        .map_err(|e| bad("Route", r, e))
                })
                .collect::<Result<_, _>>()?,
            supports_100rel: false,
            session_id: None,
        })
    }
}

impl SipAgent {
    /// Ends a call known only from its saved dialog (after a restart): an in-dialog BYE, waiting at most `within`
    /// for the far end's answer. Returns its status (481 when the far end no longer knows the call).
    pub async fn end_saved(&self, saved: &SavedDialog, within: Duration) -> Result<(), SipError> {
        let snapshot = saved.snapshot()?;
        let id = snapshot.id.clone();
        let (state_tx, _states) = self.dialogs.new_dialog_state_channel();
        self.dialogs
            .restore_from_snapshot(snapshot, state_tx)
            .map_err(|e| bad("saved dialog", &saved.call_id, e))?;
        let result = match self.dialogs.get_dialog(&id) {
            Some(Dialog::Invite(d)) => tokio::time::timeout(within, d.hangup())
                .await
                .map_err(|_| bad("BYE", &saved.call_id, "no answer in time"))
                .and_then(|r| r.map_err(|e| bad("BYE", &saved.call_id, e))),
            _ => Err(bad("saved dialog", &saved.call_id, "could not be restored")),
        };
        self.dialogs.remove_dialog(&id);
        result
    }
}
