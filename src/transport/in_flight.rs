//! The read-ahead bound: the requests handed to rmcp and not yet answered. rmcp gives every
//! request a task of its own at once, so without a bound a client pipelining 20k requests had 20k
//! tasks and answers alive together (180 MB).

use std::collections::HashSet;

use rmcp::RoleServer;
use rmcp::model::{ClientNotification, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use tokio::sync::Notify;

/// How many requests may wait for their answer before `receive` stops reading.
pub const MAX_IN_FLIGHT: usize = 256;

/// The ids of the requests handed over and not yet answered.
#[derive(Default)]
pub(super) struct InFlight {
    ids: std::sync::Mutex<HashSet<RequestId>>,
    /// Signalled when an id leaves.
    freed: Notify,
}

impl InFlight {
    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than `limit` requests are unanswered. Cancellation-safe.
    pub(super) async fn room(&self, limit: usize) {
        while self.ids().len() >= limit {
            self.freed.notified().await;
        }
    }

    pub(super) fn enter(&self, id: &RequestId) {
        self.ids().insert(id.clone());
    }

    pub(super) fn leave(&self, id: &RequestId) {
        if self.ids().remove(id) {
            self.freed.notify_one();
        }
    }

    /// Follows a message from the peer: a request enters; a cancelled one leaves, since rmcp may
    /// drop its answer.
    pub(super) fn note_incoming(&self, message: &RxJsonRpcMessage<RoleServer>) {
        match message {
            JsonRpcMessage::Request(request) => self.enter(&request.id),
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                {
                    self.leave(id);
                }
            }
            _ => {}
        }
    }

    /// The id an outgoing answer settles.
    pub(super) fn answered(message: &TxJsonRpcMessage<RoleServer>) -> Option<RequestId> {
        match message {
            JsonRpcMessage::Response(response) => Some(response.id.clone()),
            JsonRpcMessage::Error(error) => error.id.clone(),
            _ => None,
        }
    }
}
