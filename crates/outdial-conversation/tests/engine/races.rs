//! Slow work never makes the call deaf: whatever is in flight, the world's events are handled when they come.

use crate::world::*;
use outdial_conversation::{Effect, MediaEffect, MediaInput, SipInput, ToBot};
use outdial_core::{BotAction, HangupBy, ReasonCode};

fn says_hello(t: &ToBot) -> Vec<(std::time::Duration, outdial_conversation::BotInput)> {
    match t {
        ToBot::Start(_) => vec![(
            ms(10),
            activity(BotAction::Say("Hello there, this is a long message.".into())),
        )],
        _ => vec![],
    }
}

fn plays_url(t: &ToBot) -> Vec<(std::time::Duration, outdial_conversation::BotInput)> {
    match t {
        ToBot::Start(_) => vec![(
            ms(10),
            activity(BotAction::PlayUrl {
                url: "http://slow.example/a.wav".into(),
                format: None,
            }),
        )],
        _ => vec![],
    }
}

fn bye_at(at: std::time::Duration) -> Vec<(std::time::Duration, SipInput)> {
    let mut sip = Script::default().sip;
    sip.push((
        at,
        SipInput::Ended {
            by_remote: true,
            reason: None,
        },
    ));
    sip
}

#[tokio::test(start_paused = true)]
async fn bye_during_synthesis_ends_the_call_when_it_comes() {
    let o = run(Script {
        synth: (secs(5), Ok(1000)),
        bot: says_hello,
        sip: bye_at(ms(1500)),
        ..Script::default()
    })
    .await;
    let (rc, _, by, at) = o.end();
    assert_eq!(
        (rc, by, at),
        (ReasonCode::ClientDisconnected, HangupBy::Callee, ms(1500))
    );
    assert_eq!(
        o.count(|e| matches!(e, Effect::Media(MediaEffect::Play(_)))),
        0,
        "nothing played after the end"
    );
}

#[tokio::test(start_paused = true)]
async fn api_hangup_during_a_slow_play_url_fetch() {
    let o = run(Script {
        fetch: (secs(10), Ok(500)),
        bot: plays_url,
        api_hangup: Some(ms(1500)),
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::Error, "ended by API", ms(1500))
    );
    assert!(o.hung_up());
}

#[tokio::test(start_paused = true)]
async fn bye_during_a_slow_play_url_fetch() {
    let o = run(Script {
        fetch: (secs(10), Ok(500)),
        bot: plays_url,
        sip: bye_at(ms(2000)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().3, ms(2000));
    assert_eq!(o.end().0, ReasonCode::ClientDisconnected);
}

#[tokio::test(start_paused = true)]
async fn bot_hangup_while_its_prompt_is_synthesised_waits_for_the_prompt() {
    let o = run(Script {
        synth: (secs(3), Ok(2000)),
        bot: |t| match t {
            ToBot::Start(_) => vec![
                (ms(10), activity(BotAction::Say("Thank you, goodbye.".into()))),
                (ms(20), activity(BotAction::Hangup(None))),
            ],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str()),
        (ReasonCode::BotDisconnected, "Bot disconnected")
    );
    // answer 1 s + open 50 ms + 10 ms + synthesis 3 s + 2 s of audio
    assert_about(at, ms(6060));
}

#[tokio::test(start_paused = true)]
async fn a_200_crossing_the_cancel_is_ignored_after_the_end() {
    let mut sip = vec![(
        ms(100),
        SipInput::Ringing {
            status: 180,
            early_media: false,
        },
    )];
    sip.push((ms(5001), answered()));
    let o = run(Script {
        sip,
        request: |r| r.answer_timeout_sec = 5.0,
        ..Script::default()
    })
    .await;
    let (rc, _, _, at) = o.end();
    assert_eq!((rc, at), (ReasonCode::NoAnswer, secs(5)));
    assert_eq!(
        o.notifications(),
        ["failed"],
        "one terminal notification, never answered"
    );
    assert_eq!(o.count(|e| *e == Effect::Media(MediaEffect::Start)), 0);
}

#[tokio::test(start_paused = true)]
async fn bye_during_detection() {
    let mut media: Vec<_> = (0..100)
        .map(|i| (ms(60 * i), MediaInput::Audio(vec![0; 480])))
        .collect();
    media.truncate(40);
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Detect,
        media,
        sip: bye_at(ms(2200)),
        ..Script::default()
    })
    .await;
    let (rc, _, _, at) = o.end();
    assert_eq!((rc, at), (ReasonCode::ClientDisconnected, ms(2200)));
}

#[tokio::test(start_paused = true)]
async fn maximum_duration_during_a_bot_request() {
    let o = run(Script {
        bot_open: (secs(20), Ok(false)),
        max_duration: secs(5),
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::Error, "maximum call duration reached", secs(6))
    );
    assert!(o.hung_up());
    assert_eq!(
        o.count(|e| matches!(e, Effect::Bot(outdial_conversation::BotEffect::Close { .. }))),
        1,
        "the bot is told"
    );
}

#[tokio::test(start_paused = true)]
async fn media_timeout_during_a_prompt() {
    let o = run(Script {
        synth: (ms(100), Ok(10_000)),
        bot: says_hello,
        media: vec![(secs(2), MediaInput::Timeout { silent_ms: 2000 })],
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str()),
        (ReasonCode::Error, "media timeout: no RTP for 2.0 s")
    );
    assert_about(at, secs(3));
}

#[tokio::test(start_paused = true)]
async fn api_hangup_while_the_bot_opens_before_the_invite() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        bot_open: (secs(8), Ok(false)),
        api_hangup: Some(secs(1)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().3, secs(1));
    assert_eq!(
        o.count(|e| *e == Effect::Sip(outdial_conversation::SipEffect::Invite)),
        0,
        "never dialled"
    );
}

#[tokio::test(start_paused = true)]
async fn answer_timeout_while_dialout_initiated_is_delivered() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        deliver: secs(30),
        request: |r| r.answer_timeout_sec = 3.0,
        ..Script::default()
    })
    .await;
    let (rc, _, _, at) = o.end();
    assert_eq!((rc, at), (ReasonCode::NoAnswer, secs(3)));
}

#[tokio::test(start_paused = true)]
async fn bye_while_the_fallback_prompt_is_synthesised() {
    let o = run(Script {
        bot_cfg: |b| b.fallback_prompt = Some("Sorry, we will call you back.".into()),
        bot_open: (ms(50), Err("bot unreachable: connection refused".into())),
        synth: (secs(4), Ok(2000)),
        sip: bye_at(ms(2000)),
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::Error, "bot unreachable: connection refused", secs(2))
    );
    assert!(!o.hung_up(), "the far end already left");
}
