//! The commands to a media loop: an unbounded channel beside a flag that says something came since the loop last
//! looked. The loop looks at every tick, 50 times a second for every call, and commands are rare: one atomic swap
//! per tick costs less than tokio's `try_recv` on an empty channel, which took ~4 % of the media thread's time at
//! 1,000 calls (BENCHMARKS.md, "Media").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::{self, error::TryRecvError};

/// The sending side; dropping it closes the channel (the loop sees [`Closed`] at its next look).
pub(crate) struct Sender<T> {
    tx: Option<mpsc::UnboundedSender<Box<T>>>,
    came: Arc<AtomicBool>,
}

pub(crate) struct Receiver<T> {
    rx: mpsc::UnboundedReceiver<Box<T>>,
    came: Arc<AtomicBool>,
    /// Taking what came, until the channel is empty.
    draining: bool,
}

/// The sender is gone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let came = Arc::new(AtomicBool::new(false));
    let sender = Sender {
        tx: Some(tx),
        came: came.clone(),
    };
    let receiver = Receiver {
        rx,
        came,
        draining: false,
    };
    (sender, receiver)
}

impl<T> Sender<T> {
    /// Queues `command` (boxed: a channel keeps a block of 32 messages for its life). The flag is raised after
    /// the message is in the channel, so that a look that sees the flag finds the message.
    pub fn send(&self, command: T) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Box::new(command));
        }
        self.came.store(true, Ordering::Release);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // The channel is closed before the flag is raised, so that the loop's look finds it closed.
        drop(self.tx.take());
        self.came.store(true, Ordering::Release);
    }
}

impl<T> Receiver<T> {
    /// The next command that came, in order; None when none is waiting (checked with one atomic swap when
    /// nothing came since the last look).
    pub fn try_next(&mut self) -> Result<Option<T>, Closed> {
        if !self.draining {
            if !self.came.swap(false, Ordering::Acquire) {
                return Ok(None);
            }
            self.draining = true;
        }
        match self.rx.try_recv() {
            Ok(command) => Ok(Some(*command)),
            Err(TryRecvError::Empty) => {
                self.draining = false;
                Ok(None)
            }
            Err(TryRecvError::Disconnected) => Err(Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(rx: &mut Receiver<u32>) -> Result<Vec<u32>, Closed> {
        let mut got = Vec::new();
        while let Some(c) = rx.try_next()? {
            got.push(c);
        }
        Ok(got)
    }

    #[test]
    fn each_look_takes_what_came_in_order_and_nothing_twice() {
        let (tx, mut rx) = channel();
        assert_eq!(all(&mut rx), Ok(vec![]));
        tx.send(1);
        tx.send(2);
        assert_eq!(all(&mut rx), Ok(vec![1, 2]));
        assert_eq!(all(&mut rx), Ok(vec![]));
        tx.send(3);
        assert_eq!(all(&mut rx), Ok(vec![3]));
    }

    #[test]
    fn what_was_sent_before_the_sender_went_is_taken_then_the_channel_is_closed() {
        let (tx, mut rx) = channel();
        tx.send(7);
        drop(tx);
        assert_eq!(rx.try_next(), Ok(Some(7)));
        assert_eq!(rx.try_next(), Err(Closed));
        // A sender dropped without sending is seen at the next look too.
        let (tx, mut rx) = channel::<u32>();
        assert_eq!(rx.try_next(), Ok(None));
        drop(tx);
        assert_eq!(rx.try_next(), Err(Closed));
    }

    #[test]
    fn a_command_sent_from_another_thread_is_never_lost() {
        let (tx, mut rx) = channel();
        let sender = std::thread::spawn(move || {
            for i in 0..100_000u32 {
                tx.send(i);
            }
        });
        let mut got = Vec::new();
        loop {
            match rx.try_next() {
                Ok(Some(c)) => got.push(c),
                Ok(None) => std::hint::spin_loop(),
                Err(Closed) => break,
            }
        }
        sender.join().expect("the sender");
        assert_eq!(got, (0..100_000).collect::<Vec<_>>());
    }
}
