//! The loop that runs a [`Machine`]: the next input (whatever comes first), the machine's effects, again — until
//! the conversation is over. It awaits nothing but its inputs; the [`Io`] carries out quick effects at once and
//! spawns slow ones, whose results come back through [`Io::next_input`].

use crate::{Effect, Input, Machine, TimerId};
use outdial_core::Conversation;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often a call collects its media events. The media runs on threads of its own; a media thread waking the
/// conversation task for each event would cost a futex call and a context switch each time (measured: 20 % more
/// CPU per call, docs/architecture.md), so the events are collected, three 20 ms frames at a time.
pub const MEDIA_POLL: Duration = Duration::from_millis(60);

/// How often a call collects its media events while its speech is being recognised: every 20 ms frame as it
/// comes, since waiting up to 60 ms for the end of a pause is waiting that much longer for the answer
/// (docs/speech.md, "Turn-taking"). The wake-ups cost little next to the recognition itself.
pub const LISTENING_MEDIA_POLL: Duration = Duration::from_millis(20);

/// The world of one conversation, as the driver sees it.
pub trait Io: Send {
    /// Carries out an effect without waiting: quick ones at once, slow ones spawned (their results come back
    /// as inputs). Timers are the driver's own and never reach the `Io`.
    fn execute(&mut self, effect: Effect);

    /// The next input from the world: SIP, the bot, recognition, API commands, results of slow work. Must be
    /// cancel-safe (the driver races it against its timers).
    fn next_input(&mut self) -> impl Future<Output = Input> + Send;

    /// A media event that has already come, if any (collected every [`MEDIA_POLL`]).
    fn poll_media(&mut self) -> Option<Input> {
        None
    }

    /// Whether media runs (and is worth polling).
    fn media_running(&self) -> bool {
        false
    }

    /// How often media events are collected now ([`MEDIA_POLL`], or [`LISTENING_MEDIA_POLL`] while speech is
    /// recognised); asked after every input, so the `Io` can also make its media loop batch accordingly.
    fn media_poll(&mut self) -> Duration {
        MEDIA_POLL
    }

    /// After the end: what is left to close or record (the bot told why, media statistics, the store written).
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Armed timers, by id.
#[derive(Debug, Default)]
struct Timers(HashMap<TimerId, Instant>);

impl Timers {
    /// The earliest deadline, if any timer is armed.
    fn earliest(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }

    /// Removes and returns the timers due at `now`, earliest first.
    fn due(&mut self, now: Instant) -> Vec<TimerId> {
        let mut due: Vec<(Instant, TimerId)> = self
            .0
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, at)| (*at, *id))
            .collect();
        due.sort_by_key(|(at, _)| *at);
        for (_, id) in &due {
            self.0.remove(id);
        }
        due.into_iter().map(|(_, id)| id).collect()
    }
}

/// Runs the conversation to its end and returns it as it ended.
///
/// Not an `async fn`: an `async fn` keeps its arguments in its future and moves them into locals beside them, so
/// the machine and the `Io` would take their room twice in every call's task for the whole call; the block below
/// uses them where they were captured (BENCHMARKS.md, "Media": memory per call).
#[allow(clippy::manual_async_fn)] // On purpose: see above.
pub fn run<I: Io>(mut machine: Machine, mut io: I) -> impl Future<Output = Conversation> + Send {
    async move {
        let mut timers = Timers::default();
        let effects = machine.start();
        dispatch(effects, &mut io, &mut timers);
        let mut poll = io.media_poll();
        let mut media_tick = media_ticks(poll);
        // One timer for the earliest deadline, moved only when that deadline changes (a new one per loop would cost a
        // timer-wheel registration for every input).
        let mut armed = timers.earliest();
        let wake = tokio::time::sleep_until(armed.unwrap_or_else(far_future));
        tokio::pin!(wake);
        while !machine.is_over() {
            tokio::select! {
                input = io.next_input() => dispatch(machine.on(input), &mut io, &mut timers),
                () = &mut wake, if armed.is_some() => {
                    for id in timers.due(Instant::now()) {
                        if machine.is_over() {
                            break;
                        }
                        dispatch(machine.on(Input::Timer(id)), &mut io, &mut timers);
                    }
                }
                _ = media_tick.tick(), if io.media_running() => {
                    while !machine.is_over() && let Some(input) = io.poll_media() {
                        dispatch(machine.on(input), &mut io, &mut timers);
                    }
                }
            }
            let wanted = io.media_poll();
            if wanted != poll {
                poll = wanted;
                media_tick = media_ticks(poll);
            }
            let next = timers.earliest();
            if next != armed {
                armed = next;
                if let Some(at) = next {
                    wake.as_mut().reset(at);
                }
            }
        }
        // Boxed: its future holds the `Io` and what it closes, room the loop above would otherwise carry.
        Box::pin(io.finish()).await;
        machine.conversation().clone()
    }
}

/// Media collection every `period`, the first one period from now.
fn media_ticks(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// A deadline that never comes (the pinned timer's value while no timer is armed).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn dispatch<I: Io>(effects: Vec<Effect>, io: &mut I, timers: &mut Timers) {
    for e in effects {
        match e {
            Effect::SetTimer(id, after) => {
                timers.0.insert(id, Instant::now() + after);
            }
            Effect::CancelTimer(id) => {
                timers.0.remove(&id);
            }
            other => io.execute(other),
        }
    }
}
