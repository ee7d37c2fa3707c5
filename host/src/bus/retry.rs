//! The queue of publishes that failed and wait for the bus to come back
//! (SPEC §6): identical messages are kept once, and with a `max_size` the
//! oldest is dropped to make room.

use super::message::BusMessage;
use std::collections::VecDeque;
use std::time::Duration;

/// How failed publishes are retried. Defaults: enabled, unbounded, every 2 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQueueOptions {
    /// Queue failed publishes at all. Default: `true`. When `false` a failed
    /// publish is dropped (and reported by [`super::BusNode::publish`]).
    pub enabled: bool,
    /// Most messages kept; the oldest is dropped beyond it. Default: `None`
    /// (unbounded).
    pub max_size: Option<usize>,
    /// How often the queue is retried; it is also retried at once after each
    /// reconnection of the bus. Default: 2 s.
    pub retry_interval: Duration,
}

impl Default for RetryQueueOptions {
    fn default() -> Self {
        RetryQueueOptions { enabled: true, max_size: None, retry_interval: Duration::from_secs(2) }
    }
}

/// A publish waiting to be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingPublish {
    pub(crate) store: String,
    pub(crate) channel: String,
    pub(crate) message: BusMessage,
    pub(crate) payload: Vec<u8>,
}

/// What [`RetryQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Added at the back.
    Added,
    /// An identical message was already waiting.
    Duplicate,
    /// Added, and the oldest message was dropped to make room.
    DroppedOldest,
    /// `max_size` is 0: nothing can be queued.
    Refused,
}

/// FIFO of pending publishes with dedup and drop-oldest.
#[derive(Debug, Default)]
pub(crate) struct RetryQueue {
    pending: VecDeque<PendingPublish>,
    max_size: Option<usize>,
}

impl RetryQueue {
    pub(crate) fn new(max_size: Option<usize>) -> Self {
        RetryQueue { pending: VecDeque::new(), max_size }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn push(&mut self, publish: PendingPublish) -> Queued {
        // The payload holds sender, kind, namespace and keys: equal payloads
        // on one channel are the same notification.
        if self.pending.iter().any(|queued| queued.channel == publish.channel && queued.payload == publish.payload) {
            return Queued::Duplicate;
        }
        let mut outcome = Queued::Added;
        if let Some(max_size) = self.max_size {
            if max_size == 0 {
                return Queued::Refused;
            }
            while self.pending.len() >= max_size {
                self.pending.pop_front();
                outcome = Queued::DroppedOldest;
            }
        }
        self.pending.push_back(publish);
        outcome
    }

    /// The oldest message, without removing it.
    pub(crate) fn front(&self) -> Option<&PendingPublish> {
        self.pending.front()
    }

    /// Remove `sent` if it is still the oldest (it may have been dropped
    /// meanwhile to make room).
    pub(crate) fn remove_front_if(&mut self, sent: &PendingPublish) {
        if self.pending.front() == Some(sent) {
            self.pending.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(key: &str) -> PendingPublish {
        PendingPublish {
            store: "s".into(),
            channel: "c".into(),
            message: BusMessage::set("bentocache", vec![key.into()]),
            payload: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn identical_messages_are_kept_once() {
        let mut queue = RetryQueue::new(None);
        assert_eq!(queue.push(pending("a")), Queued::Added);
        assert_eq!(queue.push(pending("a")), Queued::Duplicate);
        assert_eq!(queue.push(pending("b")), Queued::Added);
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn max_size_drops_the_oldest() {
        let mut queue = RetryQueue::new(Some(2));
        queue.push(pending("a"));
        queue.push(pending("b"));
        assert_eq!(queue.push(pending("c")), Queued::DroppedOldest);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.front(), Some(&pending("b")));
    }

    #[test]
    fn max_size_zero_refuses() {
        let mut queue = RetryQueue::new(Some(0));
        assert_eq!(queue.push(pending("a")), Queued::Refused);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn removing_the_front_only_if_it_is_still_there() {
        let mut queue = RetryQueue::new(Some(1));
        queue.push(pending("a"));
        let sent = queue.front().cloned().unwrap();
        queue.push(pending("b"));
        queue.remove_front_if(&sent);
        assert_eq!(queue.front(), Some(&pending("b")));
        let sent = queue.front().cloned().unwrap();
        queue.remove_front_if(&sent);
        assert_eq!(queue.len(), 0);
    }
}
