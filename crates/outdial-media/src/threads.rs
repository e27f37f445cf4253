//! The threads that run the calls' media loops: each has its own single-threaded runtime, and runs at a real-time
//! priority when the system allows it (`SCHED_FIFO`, which needs `CAP_SYS_NICE`). A packet due every 20 ms then
//! leaves on time even when other processes or the gateway's own work (detection, speech, HTTP, SIP) keep the
//! cores busy: a woken real-time thread runs before any ordinary one.

use std::sync::atomic::{AtomicUsize, Ordering};
use thread_priority::{
    RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

/// The real-time priority of the media threads (1–99; low, so that the kernel's own threads go first).
const PRIORITY: u8 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    #[error("cannot start a media thread: {0}")]
    Start(std::io::Error),
}

/// Media threads, handed out round-robin to new calls (see [`crate::MediaConfig::runtime`]).
pub struct MediaThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    /// Whether the threads got the real-time priority.
    pub realtime: bool,
}

impl MediaThreads {
    /// Starts `n` threads (at least one); with `realtime`, asks for the real-time priority and says in the log
    /// when it is refused (the threads then run at the normal priority).
    pub fn start(n: usize, realtime: bool) -> Result<MediaThreads, ThreadsError> {
        let mut handles = Vec::new();
        let mut all_realtime = realtime;
        for i in 0..n.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("outdial-media-{i}"))
                .spawn(move || {
                    let got = realtime && raise_priority();
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                    match rt {
                        Ok(rt) => {
                            let _ = tx.send(Ok((rt.handle().clone(), got)));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })
                .map_err(ThreadsError::Start)?;
            let (handle, got) = rx
                .recv()
                .map_err(|_| ThreadsError::Start(std::io::Error::other("the thread ended")))?
                .map_err(ThreadsError::Start)?;
            all_realtime &= got;
            handles.push(handle);
        }
        Ok(MediaThreads {
            handles,
            next: AtomicUsize::new(0),
            realtime: all_realtime,
        })
    }

    /// The runtime for the next call's media loop.
    pub fn pick(&self) -> tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }

    /// How many threads run.
    pub fn count(&self) -> usize {
        self.handles.len()
    }
}

/// Puts the current thread in `SCHED_FIFO` at [`PRIORITY`]; false (and a log line) when refused.
fn raise_priority() -> bool {
    let value = match ThreadPriorityValue::try_from(PRIORITY) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("media thread priority {PRIORITY}: {e}");
            return false;
        }
    };
    match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "media threads run at the normal priority: the real-time priority was refused ({e:?}); \
                 grant CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE) or set sip.media_realtime = false"
            );
            false
        }
    }
}
