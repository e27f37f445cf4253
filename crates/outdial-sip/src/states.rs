//! One channel for every dialog's states, routed to each call (docs/architecture.md, "Memory per call").
//!
//! The stack reports a dialog's states (provisional and final answers, in-dialog requests, its end) on a channel
//! it is handed with each INVITE. A tokio channel allocates its first block of 32 messages when it is made, and a
//! `DialogState` takes ~300 bytes: a channel per call held ~9.5 KB for the whole call. Every INVITE is handed a
//! clone of one shared sender instead, and one task routes each state to its call by Call-ID, boxed (the call's
//! channel holds a block of 32 pointers).

use parking_lot::Mutex;
use rsipstack::dialog::dialog::{DialogState, DialogStateSender};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Box<DialogState>>>>>;

/// The shared channel and where its states go.
pub(crate) struct States {
    tx: DialogStateSender,
    routes: Routes,
}

impl States {
    /// Starts the routing task; it stops with `cancel`.
    pub(crate) fn spawn(cancel: CancellationToken) -> States {
        let (tx, mut rx) = mpsc::unbounded_channel::<DialogState>();
        let routes = Routes::default();
        let table = routes.clone();
        tokio::spawn(async move {
            loop {
                let state = tokio::select! {
                    state = rx.recv() => state,
                    () = cancel.cancelled() => None,
                };
                let Some(state) = state else { return };
                let route = table.lock().get(state.id().call_id.as_str()).cloned();
                // A state nobody waits for any more (the call's task has ended) is dropped, as it was when each
                // call had its own channel: an in-dialog request's transaction handle goes with it.
                if let Some(route) = route {
                    let _ = route.send(Box::new(state));
                }
            }
        });
        States { tx, routes }
    }

    /// The states of the dialogs whose Call-ID is `call_id`, until the subscription is dropped. Subscribe before
    /// the INVITE is sent: a state that comes before is dropped.
    pub(crate) fn subscribe(&self, call_id: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().insert(call_id.to_string(), tx.clone());
        Subscription {
            sender: self.tx.clone(),
            rx,
            route: tx,
            call_id: call_id.to_string(),
            routes: self.routes.clone(),
        }
    }

    /// How many calls are subscribed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.routes.lock().len()
    }
}

/// One call's share of the states.
pub(crate) struct Subscription {
    /// What the stack is handed with the INVITE.
    pub(crate) sender: DialogStateSender,
    rx: mpsc::UnboundedReceiver<Box<DialogState>>,
    route: mpsc::UnboundedSender<Box<DialogState>>,
    call_id: String,
    routes: Routes,
}

/// The local tag of a [`Subscription::mark`]; the stack's own tags are random hex and never this.
const MARK: &str = "outdial-mark";

impl Subscription {
    pub(crate) async fn recv(&mut self) -> Option<DialogState> {
        self.rx.recv().await.map(|state| *state)
    }

    /// Sends a mark down the shared channel, behind every state the stack has reported so far: when
    /// [`is_mark`] sees it come back, all of them have been received. The INVITE's final answer reaches the call
    /// without the router, and would otherwise overtake a 180 that came before it.
    pub(crate) fn mark(&self) {
        let id = rsipstack::dialog::DialogId {
            call_id: self.call_id.clone(),
            local_tag: MARK.into(),
            remote_tag: String::new(),
        };
        let _ = self.sender.send(DialogState::Calling(id));
    }
}

/// Whether `state` is a [`Subscription::mark`] come back.
pub(crate) fn is_mark(state: &DialogState) -> bool {
    matches!(state, DialogState::Calling(id) if id.local_tag == MARK)
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut routes = self.routes.lock();
        // Only our own route: a later attempt of the same call (a redirection) may have replaced it.
        if routes
            .get(&self.call_id)
            .is_some_and(|r| r.same_channel(&self.route))
        {
            routes.remove(&self.call_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::dialog::DialogId;
    use rsipstack::dialog::dialog::TerminatedReason;

    fn id(call_id: &str) -> DialogId {
        DialogId {
            call_id: call_id.into(),
            local_tag: "l".into(),
            remote_tag: "r".into(),
        }
    }

    #[tokio::test]
    async fn each_call_gets_its_own_states_and_nothing_once_it_has_gone() {
        let states = States::spawn(CancellationToken::new());
        let mut a = states.subscribe("a");
        let mut b = states.subscribe("b");
        a.sender.send(DialogState::Trying(id("b"))).unwrap();
        a.sender.send(DialogState::Calling(id("a"))).unwrap();
        b.sender
            .send(DialogState::Terminated(id("b"), TerminatedReason::UasBye))
            .unwrap();
        assert!(matches!(a.recv().await, Some(DialogState::Calling(i)) if i.call_id == "a"));
        assert!(matches!(b.recv().await, Some(DialogState::Trying(i)) if i.call_id == "b"));
        assert!(matches!(b.recv().await, Some(DialogState::Terminated(i, _)) if i.call_id == "b"));
        assert_eq!(states.len(), 2);
        let sender = b.sender.clone();
        drop(b);
        assert_eq!(states.len(), 1);
        // A state for a call that has gone is dropped; the others still arrive.
        sender.send(DialogState::Trying(id("b"))).unwrap();
        sender.send(DialogState::Trying(id("a"))).unwrap();
        assert!(matches!(a.recv().await, Some(DialogState::Trying(i)) if i.call_id == "a"));
    }

    #[tokio::test]
    async fn a_later_attempt_of_the_same_call_keeps_its_route_when_the_earlier_one_goes() {
        let states = States::spawn(CancellationToken::new());
        let first = states.subscribe("c");
        let mut second = states.subscribe("c");
        drop(first);
        assert_eq!(states.len(), 1);
        second.sender.send(DialogState::Trying(id("c"))).unwrap();
        assert!(matches!(second.recv().await, Some(DialogState::Trying(_))));
    }
}
