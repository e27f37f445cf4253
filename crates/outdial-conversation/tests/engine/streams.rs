//! Streaming bots' user stream (docs/bots.md, "Streaming bots") and bots that refuse the call before the INVITE.

use crate::world::*;
use outdial_conversation::{BotEffect, BotInput, Effect, MediaInput, SipEffect, ToBot};
use outdial_core::{HangupBy, ReasonCode};

fn user_stream(o: &Outcome) -> Vec<(std::time::Duration, bool)> {
    o.effects
        .iter()
        .filter_map(|(at, e)| match e {
            Effect::Bot(BotEffect::UserStream(on)) => Some((*at, *on)),
            _ => None,
        })
        .collect()
}

fn recognition() -> BotInput {
    BotInput::Recognition {
        text: "yes please".into(),
        confidence: 0.9,
    }
}

#[tokio::test(start_paused = true)]
async fn the_user_stream_starts_after_the_answer_and_the_start_event() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        bot_open: (ms(50), Ok(true)),
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    let start = o
        .first(|e| matches!(e, Effect::Bot(BotEffect::Send(ToBot::Start(_)))))
        .unwrap();
    let streams = user_stream(&o);
    assert_eq!(streams.first().map(|s| s.1), Some(true));
    let on = streams[0].0;
    assert!(
        on >= start && on >= ms(1080),
        "after the answer (1 s after the INVITE at 80 ms) and the start event, not when the bot opened (50 ms): {on:?}"
    );
    let start_idx = o
        .effects
        .iter()
        .position(|(_, e)| matches!(e, Effect::Bot(BotEffect::Send(ToBot::Start(_)))))
        .unwrap();
    let on_idx = o
        .effects
        .iter()
        .position(|(_, e)| matches!(e, Effect::Bot(BotEffect::UserStream(true))))
        .unwrap();
    assert!(start_idx < on_idx, "start activity first");
}

#[tokio::test(start_paused = true)]
async fn the_user_stream_stops_at_the_bots_recognition_and_starts_after_its_next_audio_has_played() {
    let o = run(Script {
        bot_open: (ms(50), Ok(true)),
        // At 1.05 s the stream starts; the bot recognises at 1.55 s, then answers with 1 s of audio.
        bot: |t| match t {
            ToBot::Start(_) => vec![
                (ms(500), recognition()),
                (ms(700), BotInput::Audio(vec![0; 8000])),
                (ms(750), BotInput::AudioEnd),
            ],
            _ => vec![],
        },
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    let streams = user_stream(&o);
    let on_off: Vec<bool> = streams.iter().map(|s| s.1).collect();
    assert_eq!(on_off, [true, false, true], "{streams:?}");
    assert_eq!(streams[1].0, ms(1550), "stopped at the recognition");
    // The audio starts at 1.75 s and lasts 1 s: the person is heard again once it has played.
    assert_about(streams[2].0, ms(2750));
}

#[tokio::test(start_paused = true)]
async fn with_barge_in_the_user_stream_stays_on() {
    let o = run(Script {
        bot_cfg: |b| b.barge_in = true,
        bot_open: (ms(50), Ok(true)),
        bot: |t| match t {
            ToBot::Start(_) => vec![(ms(500), recognition())],
            _ => vec![],
        },
        media: vec![(ms(100), MediaInput::Audio(vec![0; 480]))],
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    let on_off: Vec<bool> = user_stream(&o).iter().map(|s| s.1).collect();
    assert_eq!(on_off, [true]);
}

#[tokio::test(start_paused = true)]
async fn a_text_bot_gets_no_user_stream() {
    let o = run(Script {
        bot_open: (ms(50), Ok(false)),
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    assert!(user_stream(&o).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_bot_that_refuses_the_conversation_before_the_call_stops_it_before_the_invite() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        bot_open: (
            ms(50),
            Err("bot refused the request: HTTP 401 (12-byte answer)".into()),
        ),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by, at),
        (
            ReasonCode::Error,
            "bot refused the request: HTTP 401 (12-byte answer)",
            HangupBy::System,
            ms(50)
        )
    );
    assert_eq!(
        o.count(|e| *e == Effect::Sip(SipEffect::Invite)),
        0,
        "the phone never rings"
    );
    assert!(!o.hung_up(), "nothing to hang up");
    assert_eq!(o.notifications(), ["failed"]);
}

#[tokio::test(start_paused = true)]
async fn a_bot_that_refuses_dialout_initiated_stops_the_call_before_the_invite() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        delivered: Err("bot refused the request: HTTP 401 (0-byte answer)".into()),
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (
            ReasonCode::Error,
            "bot refused the request: HTTP 401 (0-byte answer)",
            ms(80)
        )
    );
    assert_eq!(o.count(|e| *e == Effect::Sip(SipEffect::Invite)), 0);
    assert_eq!(o.notifications(), ["failed"]);
    assert_eq!(
        o.count(|e| matches!(e, Effect::Bot(BotEffect::Close { .. }))),
        1,
        "the bot is told why"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hold_pauses_recognition_and_the_bot_hears_hold_and_resume() {
    let o = run(Script {
        bot_cfg: |b| b.dialout_start_recognition_on_connect = true,
        media: vec![
            (secs(2), MediaInput::Hold(true)),
            (secs(3), MediaInput::Hold(true)),
            (secs(40), MediaInput::Hold(false)),
        ],
        api_hangup: Some(secs(45)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().1, "ended by API", "a 38 s hold does not end the call");
    let to_bot = o.to_bot();
    assert_eq!(
        to_bot
            .iter()
            .filter(|n| *n == "hold" || *n == "resume")
            .collect::<Vec<_>>(),
        ["hold", "resume"],
        "{to_bot:?}"
    );
    let speech: Vec<(std::time::Duration, bool)> = o
        .effects
        .iter()
        .filter_map(|(at, e)| match e {
            Effect::Speech(outdial_conversation::SpeechEffect::StartRecognition { .. }) => Some((*at, true)),
            Effect::Speech(outdial_conversation::SpeechEffect::StopRecognition) => Some((*at, false)),
            _ => None,
        })
        .collect();
    let on_off: Vec<bool> = speech.iter().map(|s| s.1).collect();
    assert_eq!(
        on_off,
        [true, false, true, false],
        "recognition pauses while held: {speech:?}"
    );
    // Held 2 s after the answer (at 1 s), resumed at 41 s; the last stop is the hang-up's.
    assert_about(speech[1].0, ms(3000));
    assert_about(speech[2].0, ms(41000));
}
