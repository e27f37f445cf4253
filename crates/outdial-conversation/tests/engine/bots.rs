//! The bot's side of a call: events in order, prompts, listening, barge-in, no-input, detection, failures.

use crate::world::*;
use outdial_conversation::{
    BotEffect, BotInput, Effect, MediaEffect, MediaInput, SipEffect, SpeechEffect, SttInput, ToBot,
};
use outdial_core::{ActivitySettings, BotAction, HangupBy, ReasonCode};
use serde_json::json;
use std::time::Duration;

/// 150 batches of 60 ms of the caller's audio (9 s): speech-like where `voiced(batch)`, silence elsewhere.
fn caller(voiced: impl Fn(u64) -> bool) -> Vec<(Duration, MediaInput)> {
    (0..150)
        .map(|i| {
            let audio = if voiced(i) { speech_like(3) } else { vec![0; 480] };
            (ms(60 * i), MediaInput::Audio(audio))
        })
        .collect()
}

/// A key the person presses (100 ms).
fn pressed(digit: char) -> MediaInput {
    MediaInput::Dtmf {
        digit,
        duration_ms: 100,
    }
}

fn tone(hz: f32, frames: usize) -> Vec<i16> {
    (0..frames * 160)
        .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin()) as i16)
        .collect()
}

fn speech_like(frames: usize) -> Vec<i16> {
    // A loud 300 Hz tone with harmonics at the level of speech: the voice detector hears it as voiced.
    (0..frames * 160)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let s = (2.0 * std::f32::consts::PI * 300.0 * t).sin()
                + 0.5 * (2.0 * std::f32::consts::PI * 600.0 * t).sin();
            (6000.0 * s) as i16
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn dialout_initiated_reaches_the_bot_before_the_invite() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        deliver: ms(400),
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    let invite = o.first(|e| *e == Effect::Sip(SipEffect::Invite)).unwrap();
    assert_eq!(
        invite,
        ms(450),
        "after the bot opened (50 ms) and answered (400 ms)"
    );
    assert_eq!(o.to_bot(), ["dialoutInitiated", "start"]);
    assert_eq!(
        o.count(|e| matches!(e, Effect::Bot(outdial_conversation::BotEffect::Open(_)))),
        1,
        "one bot conversation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bot_that_cannot_be_reached_before_the_invite_does_not_stop_the_call() {
    let o = run(Script {
        bot_cfg: |b| b.send_events_to_bot = vec!["dialoutInitiated".into()],
        bot_open: (ms(50), Err("bot unreachable".into())),
        ..Script::default()
    })
    .await;
    assert_eq!(o.first(|e| *e == Effect::Sip(SipEffect::Invite)), Some(ms(50)));
}

#[tokio::test(start_paused = true)]
async fn the_fallback_prompt_plays_to_the_end_then_the_call_ends() {
    let o = run(Script {
        bot_cfg: |b| b.fallback_prompt = Some("Sorry, we will call you back.".into()),
        bot_open: (ms(50), Err("bot unreachable: HTTP 503".into())),
        synth: (ms(200), Ok(1500)),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by),
        (ReasonCode::Error, "bot unreachable: HTTP 503", HangupBy::System)
    );
    // answer 1 s + 50 ms + synthesis 200 ms + 1.5 s of audio
    assert_about(at, ms(2750));
    assert_eq!(o.events("fallback-prompt")[0]["audioMs"], 1500);
    assert!(o.hung_up());
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_prompt_a_failing_bot_ends_the_call_at_once() {
    let o = run(Script {
        bot: |t| match t {
            ToBot::Start(_) => vec![(secs(3), BotInput::Failed("bot unreachable: timeout".into()))],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::Error, "bot unreachable: timeout", ms(4050))
    );
}

#[tokio::test(start_paused = true)]
async fn a_fax_is_hung_up_in_disconnect_mode() {
    let media = (0..60)
        .map(|i| (ms(60 * i), MediaInput::Audio(tone(2100.0, 3))))
        .collect();
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Disconnect,
        media,
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str()),
        (ReasonCode::MachineDetected, "fax detected")
    );
    assert!(at < secs(4), "decided within 3 s of the answer: {at:?}");
    assert_eq!(o.events("machine-detection")[0]["result"], "fax");
}

#[tokio::test(start_paused = true)]
async fn prompts_wait_for_the_detection_verdict() {
    // A short "hello" then silence (a person): the bot's greeting is held until the verdict.
    let media = caller(|i| i < 8);
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Detect,
        media,
        bot: |t| match t {
            ToBot::Start(_) => vec![(ms(10), activity(BotAction::Say("Hello.".into())))],
            _ => vec![],
        },
        api_hangup: Some(secs(10)),
        ..Script::default()
    })
    .await;
    let verdict = o.first(|e| matches!(e, Effect::Record(outdial_conversation::Record::Transition { kind, .. }) if kind.as_str() == "machine-detection"));
    let synth = o.first(|e| matches!(e, Effect::Speech(SpeechEffect::Synthesize { .. })));
    let (verdict, synth) = (verdict.expect("a verdict"), synth.expect("the greeting is said"));
    assert!(
        synth >= verdict,
        "held until the verdict: synth {synth:?}, verdict {verdict:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_persons_words_go_to_the_bot_as_a_message() {
    let o = run(Script {
        bot_cfg: |b| b.dialout_start_recognition_on_connect = true,
        stt: vec![(
            secs(2),
            SttInput::Final {
                text: "yes please".into(),
                confidence: 0.9,
                audio_ms: 800,
                took_ms: 150,
            },
        )],
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.to_bot(), ["start", "message:yes please"]);
    assert_eq!(o.events("recognition")[0]["recognitionMs"], 150);
}

/// While recognition runs, the media is collected every 20 ms instead of 60: the caller's audio reaches the
/// recogniser (and the end of their pause is seen) up to 40 ms sooner. Before it runs, every 60 ms.
#[tokio::test(start_paused = true)]
async fn audio_reaches_the_recogniser_within_a_frame_while_it_listens() {
    // Frames 17 ms apart from 0.5 s after the answer: every phase against the collection tick. Recognition
    // starts on connect.
    let o = run(Script {
        bot_cfg: |b| b.dialout_start_recognition_on_connect = true,
        media: (0..12)
            .map(|k| (ms(500 + 17 * k), MediaInput::Audio(vec![0; 160])))
            .collect(),
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    let answered = o
        .first(|e| *e == Effect::Media(MediaEffect::Start))
        .expect("media starts");
    let listening = o
        .first(|e| matches!(e, Effect::Speech(SpeechEffect::StartRecognition { .. })))
        .expect("recognition starts");
    assert!(listening <= answered + ms(500), "recognition at {listening:?}");
    let fed: Vec<Duration> = o
        .effects
        .iter()
        .filter(|(_, e)| matches!(e, Effect::Speech(SpeechEffect::Feed(_))))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(fed.len(), 12, "{fed:?}");
    for (k, at) in fed.iter().enumerate() {
        let came = answered + ms(500 + 17 * k as u64);
        assert!(
            *at >= came && *at <= came + ms(20),
            "frame {k} came at {came:?}, fed at {at:?}"
        );
    }
}

fn partials_then_final() -> Vec<(Duration, SttInput)> {
    vec![
        (ms(1500), SttInput::Partial("yes".into())),
        (ms(1800), SttInput::Partial("yes plea".into())),
        (
            secs(2),
            SttInput::Final {
                text: "yes please".into(),
                confidence: 0.9,
                audio_ms: 800,
                took_ms: 150,
            },
        ),
    ]
}

/// `sendEventsToBot: ["speechHypothesis"]`: each partial transcript goes to the bot as a `speechHypothesis` event
/// `{text}` before the final message; partials stay out of the timeline.
#[tokio::test(start_paused = true)]
async fn partial_transcripts_go_to_bots_that_ask_for_them() {
    let o = run(Script {
        bot_cfg: |b| {
            b.dialout_start_recognition_on_connect = true;
            b.send_events_to_bot = vec!["speechHypothesis".into()];
        },
        stt: partials_then_final(),
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    assert_eq!(
        o.to_bot(),
        [
            "start",
            "speechHypothesis",
            "speechHypothesis",
            "message:yes please"
        ]
    );
    let texts: Vec<_> = o
        .effects
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Bot(outdial_conversation::BotEffect::Send(ToBot::Event {
                name: "speechHypothesis",
                value,
            })) => Some(value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [json!({"text": "yes"}), json!({"text": "yes plea"})]);
    let recorded: Vec<_> = o.events("bot-event").iter().map(|e| e["name"].clone()).collect();
    assert!(!recorded.contains(&json!("speechHypothesis")), "{recorded:?}");
    assert_eq!(o.events("recognition").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn partial_transcripts_stay_with_the_gateway_by_default() {
    let o = run(Script {
        bot_cfg: |b| b.dialout_start_recognition_on_connect = true,
        stt: partials_then_final(),
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.to_bot(), ["start", "message:yes please"]);
}

#[tokio::test(start_paused = true)]
async fn recognition_starts_once_the_first_prompt_has_played() {
    let o = run(Script {
        bot: |t| match t {
            ToBot::Start(_) => vec![(
                ms(10),
                activity(BotAction::Say("Would you like to hear more?".into())),
            )],
            _ => vec![],
        },
        api_hangup: Some(secs(5)),
        ..Script::default()
    })
    .await;
    let start = o
        .first(|e| matches!(e, Effect::Speech(SpeechEffect::StartRecognition { .. })))
        .unwrap();
    assert_about(start, ms(2160)); // at the end of the 1 s prompt
}

#[tokio::test(start_paused = true)]
async fn no_input_after_a_prompt_tells_the_bot() {
    let o = run(Script {
        bot: |t| match t {
            ToBot::Start(_) => vec![(
                ms(10),
                with_settings(
                    BotAction::Say("Hello?".into()),
                    ActivitySettings {
                        no_input_timeout_ms: Some(3000),
                        ..Default::default()
                    },
                ),
            )],
            _ => vec![],
        },
        api_hangup: Some(secs(10)),
        ..Script::default()
    })
    .await;
    let sent = o.first(|e| {
        matches!(
            e,
            Effect::Bot(outdial_conversation::BotEffect::Send(ToBot::Event {
                name: "noUserInput",
                ..
            }))
        )
    });
    assert_about(sent.unwrap(), ms(5160)); // 3 s after the prompt ended at 2.16 s
}

#[tokio::test(start_paused = true)]
async fn the_person_talking_over_the_prompt_stops_it() {
    let o = run(Script {
        bot_cfg: |b| b.barge_in = true,
        synth: (ms(100), Ok(10_000)),
        bot: |t| match t {
            ToBot::Start(_) => vec![(ms(10), activity(BotAction::Say("A very long prompt.".into())))],
            _ => vec![],
        },
        media: vec![(ms(2000), MediaInput::Audio(speech_like(3)))],
        api_hangup: Some(secs(8)),
        ..Script::default()
    })
    .await;
    let stop = o.first(|e| *e == Effect::Media(MediaEffect::StopPlayout));
    assert_about(stop.unwrap(), secs(3)); // as soon as the speech came
    assert_eq!(o.events("barge-in").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn abort_prompts_drops_what_is_queued() {
    let o = run(Script {
        synth: (ms(100), Ok(5000)),
        bot: |t| match t {
            ToBot::Start(_) => vec![
                (ms(10), activity(BotAction::Say("First message.".into()))),
                (ms(10), activity(BotAction::Say("Second message.".into()))),
                (ms(500), activity(BotAction::AbortPrompts)),
            ],
            _ => vec![],
        },
        api_hangup: Some(secs(10)),
        ..Script::default()
    })
    .await;
    assert_eq!(
        o.count(|e| matches!(e, Effect::Speech(SpeechEffect::Synthesize { .. }))),
        1,
        "the second is never said"
    );
    assert_eq!(
        o.first(|e| *e == Effect::Media(MediaEffect::StopPlayout)),
        Some(ms(1550))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_play_url_goes_into_the_timeline_and_the_queue_goes_on() {
    let o = run(Script {
        fetch: (
            ms(100),
            Err(outdial_conversation::Failure(
                "http://x/a.wav answered HTTP 404".into(),
            )),
        ),
        bot: |t| match t {
            ToBot::Start(_) => vec![
                (
                    ms(10),
                    activity(BotAction::PlayUrl {
                        url: "http://x/a.wav".into(),
                        format: None,
                    }),
                ),
                (ms(10), activity(BotAction::Hangup(Some("after the file".into())))),
            ],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    assert_eq!(
        o.events("play-url-failed")[0]["reason"],
        "http://x/a.wav answered HTTP 404"
    );
    assert_eq!(o.end().1, "after the file");
}

#[tokio::test(start_paused = true)]
async fn dtmf_from_the_person_reaches_the_bot() {
    let o = run(Script {
        media: vec![(ms(500), pressed('5'))],
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.to_bot(), ["start", "DTMF"]);
    assert_eq!(o.events("dtmf")[0]["digit"], "5");
}

/// A bot that is slow to open its conversation (a Dialogflow agent's first token, say) still hears what happened
/// meanwhile: the digit pressed, the hold and the machine's verdict go after its `start`, in order.
#[tokio::test(start_paused = true)]
async fn what_happens_while_a_slow_bot_opens_reaches_it_after_its_start() {
    let mut media = caller(|i| i < 100);
    media.push((ms(500), pressed('5')));
    media.push((ms(700), MediaInput::Hold(true)));
    media.push((ms(900), MediaInput::Hold(false)));
    media.sort_by_key(|(at, _)| *at);
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Detect,
        media,
        bot_open: (secs(8), Ok(false)),
        api_hangup: Some(secs(12)),
        ..Script::default()
    })
    .await;
    let verdict = o.events("machine-detection");
    assert_eq!(verdict[0]["result"], "machine", "{verdict:?}");
    assert_eq!(
        o.to_bot(),
        ["start", "DTMF", "hold", "resume", "machineDetection"],
        "{verdict:?}"
    );
    // The answer at 1 s, the bot conversation open 8 s later: nothing went to the bot before.
    let first_sent = o.first(|e| matches!(e, Effect::Bot(BotEffect::Send(_)))).unwrap();
    assert_eq!(first_sent, secs(9));
    let told: Vec<_> = o.events("bot-event").iter().map(|e| e["name"].clone()).collect();
    assert_eq!(told, ["start", "DTMF", "hold", "resume", "machineDetection"]);
}

/// What waited for a bot conversation that then fails to open is not sent, and not in the timeline as sent.
#[tokio::test(start_paused = true)]
async fn what_waited_for_a_bot_that_never_opens_is_not_sent() {
    let o = run(Script {
        media: vec![(ms(500), pressed('5'))],
        bot_open: (secs(3), Err("bot unreachable: HTTP 503".into())),
        ..Script::default()
    })
    .await;
    assert!(o.to_bot().is_empty(), "{:?}", o.to_bot());
    assert!(o.events("bot-event").is_empty());
    assert_eq!(o.events("dtmf")[0]["digit"], "5");
    assert_eq!(o.end().1, "bot unreachable: HTTP 503");
}

#[tokio::test(start_paused = true)]
async fn the_bots_settings_reach_the_terminal_record() {
    let o = run(Script {
        bot: |t| match t {
            ToBot::Start(_) => vec![(
                ms(10),
                with_settings(
                    BotAction::Hangup(None),
                    ActivitySettings {
                        bot_operation_result: Some("sale".into()),
                        ..Default::default()
                    },
                ),
            )],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    assert_eq!(o.conversation.bot_operation_result.as_deref(), Some("sale"));
}

#[tokio::test(start_paused = true)]
async fn a_streaming_bots_audio_is_played_and_it_hears_the_person() {
    let o = run(Script {
        bot_open: (ms(50), Ok(true)),
        bot: |t| match t {
            ToBot::Start(_) => vec![(ms(10), BotInput::Audio(vec![0; 1600]))],
            _ => vec![],
        },
        media: vec![(ms(500), MediaInput::Audio(vec![0; 480]))],
        api_hangup: Some(secs(3)),
        ..Script::default()
    })
    .await;
    assert_eq!(
        o.count(|e| matches!(e, Effect::Media(MediaEffect::Play(p)) if p.len() == 1600)),
        1
    );
    assert_eq!(
        o.count(|e| matches!(e, Effect::Bot(outdial_conversation::BotEffect::Audio(_)))),
        1
    );
    assert_eq!(
        o.count(|e| matches!(e, Effect::Speech(_))),
        0,
        "no local speech for a streaming bot"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_recognition_is_honoured_until_the_bot_starts_it_again() {
    let o = run(Script {
        bot_cfg: |b| b.dialout_start_recognition_on_connect = true,
        bot: |t| match t {
            ToBot::Start(_) => vec![
                (ms(10), activity(BotAction::StopRecognition)),
                (ms(20), activity(BotAction::Say("Listen.".into()))),
                (ms(3000), activity(BotAction::StartRecognition)),
            ],
            _ => vec![],
        },
        api_hangup: Some(secs(6)),
        ..Script::default()
    })
    .await;
    let starts: Vec<_> = o
        .effects
        .iter()
        .filter(|(_, e)| matches!(e, Effect::Speech(SpeechEffect::StartRecognition { .. })))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(
        starts,
        [ms(1050), ms(4050)],
        "not after the prompt, only when the bot asks again"
    );
}

fn say_then_hang_up(t: &ToBot) -> Vec<(Duration, BotInput)> {
    match t {
        ToBot::Start(_) => vec![
            (ms(10), activity(BotAction::Say("Hello.".into()))),
            (ms(20), activity(BotAction::Hangup(None))),
        ],
        _ => vec![],
    }
}

/// A streaming voice (docs/speech.md, "Streaming synthesis"): each piece plays as it comes, the first one a
/// piece's time after the request instead of the whole message's; the message (and the hang-up after it) ends
/// when the last piece has played — also when a piece comes after the one before it has finished playing.
#[tokio::test(start_paused = true)]
async fn a_streamed_message_plays_as_it_comes_and_ends_after_its_last_piece() {
    // (time between pieces, audio in all, pieces) → when the hang-up comes after the request, at the earliest.
    for (gap, audio, pieces, end_after) in [(300, 3000, 3, 300 + 3000), (800, 1500, 3, 3 * 800 + 800)] {
        let o = run(Script {
            bot: say_then_hang_up,
            synth: (ms(gap), Ok(audio)),
            synth_pieces: Some(pieces),
            ..Script::default()
        })
        .await;
        let asked = o
            .first(|e| matches!(e, Effect::Speech(SpeechEffect::Synthesize { stream: true, .. })))
            .expect("the message is synthesised, streaming");
        let plays: Vec<Duration> = o
            .effects
            .iter()
            .filter(|(_, e)| matches!(e, Effect::Media(MediaEffect::Play(_))))
            .map(|(at, _)| *at - asked)
            .collect();
        assert_eq!(plays.len(), pieces as usize, "{gap}: {plays:?}");
        assert_about(plays[0], ms(gap));
        let prompt = &o.events("prompt")[0];
        assert_eq!(prompt["firstAudioMs"], audio / pieces, "{prompt}");
        let (code, _, _, at) = o.end();
        assert_eq!(code, ReasonCode::BotDisconnected);
        assert!(
            at - asked >= ms(end_after),
            "{gap}: hung up {:?} after the request",
            at - asked
        );
        assert!(
            at - asked < ms(end_after + 500),
            "{gap}: hung up {:?} after the request",
            at - asked
        );
    }
}

/// The second opinion (docs/detection.md): a greeting the cadence calls a machine waits for words; recognition
/// starts with partial transcripts, its words go to the detector (and the timeline), never to the bot, and stop
/// once the verdict is given.
#[tokio::test(start_paused = true)]
async fn the_second_opinion_hears_a_screening_service_and_the_bot_does_not() {
    let media = caller(|i| i < 40);
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Detect,
        media,
        stt: vec![(
            ms(700),
            SttInput::Final {
                text: "The person you're calling is using a screening service.".into(),
                confidence: 0.9,
                audio_ms: 2000,
                took_ms: 300,
            },
        )],
        api_hangup: Some(secs(8)),
        ..Script::default()
    })
    .await;
    let start = o
        .first(|e| {
            matches!(
                e,
                Effect::Speech(SpeechEffect::StartRecognition {
                    partials: true,
                    for_detection: true,
                    ..
                })
            )
        })
        .expect("recognition for the second opinion, said to be for detection");
    assert_eq!(
        o.count(|e| matches!(
            e,
            Effect::Speech(SpeechEffect::StartRecognition {
                for_detection: false,
                ..
            })
        )),
        0,
        "the bot asked for no recognition"
    );
    let verdict = o.events("machine-detection");
    assert_eq!(verdict[0]["result"], "machine", "{verdict:?}");
    assert_eq!(verdict[0]["cause"], "SCREENING", "{verdict:?}");
    // Held until the words came, 700 ms (the detector counts in the 60 ms batches of audio it was given).
    let held = verdict[0]["evidence"]["heldMs"].as_u64().unwrap();
    assert!((640..=760).contains(&held), "{verdict:?}");
    let stop = o
        .first(|e| matches!(e, Effect::Speech(SpeechEffect::StopRecognition)))
        .expect("recognition stops at the verdict");
    assert_eq!(stop - start, ms(700));
    let rec = o.events("recognition");
    assert_eq!(rec[0]["purpose"], "machine-detection", "{rec:?}");
    assert!(
        o.to_bot().iter().all(|m| !m.starts_with("message:")),
        "{:?}",
        o.to_bot()
    );
    assert!(
        o.to_bot().contains(&"machineDetection".to_string()),
        "{:?}",
        o.to_bot()
    );
}

/// docs/detection.md, "A person's hello, rechecked": a short "hello" and a pause give a person's verdict and the
/// bot starts talking; then a greeting of 3 s without a pause follows — the verdict becomes a machine's (a second
/// `machine-detection` naming the one it replaced), the bot's prompt stops and the bot is told
/// `voicemail-prompt-start`.
#[tokio::test(start_paused = true)]
async fn a_hello_then_a_greeting_turns_the_persons_verdict_into_a_machines() {
    let media = caller(|i| i < 8 || (28..78).contains(&i));
    let o = run(Script {
        request: |r| r.machine_detection = outdial_core::MachineDetection::Detect,
        media,
        bot: |t| match t {
            ToBot::Start(_) => vec![(ms(10), activity(BotAction::Say("Hello.".into())))],
            _ => vec![],
        },
        synth: (ms(100), Ok(5000)),
        api_hangup: Some(secs(10)),
        ..Script::default()
    })
    .await;
    let verdicts = o.events("machine-detection");
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[0]["result"], "human", "{verdicts:?}");
    assert_eq!(verdicts[1]["result"], "machine", "{verdicts:?}");
    let revised = &verdicts[1]["evidence"]["revised"];
    assert_eq!(revised["result"], "human", "{verdicts:?}");
    assert_eq!(revised["cause"], verdicts[0]["cause"], "{verdicts:?}");
    let is_verdict = |e: &Effect| matches!(e, Effect::Record(outdial_conversation::Record::Transition { kind, .. }) if kind.as_str() == "machine-detection");
    let first = o.first(is_verdict).unwrap();
    let play = o
        .first(|e| matches!(e, Effect::Media(MediaEffect::Play(_))))
        .expect("the greeting is said to the person");
    assert!(play > first, "{play:?} {first:?}");
    // The greeting runs from 1.68 s to 4.68 s: the second verdict after 1.8 s of its voice, before its end.
    let stop = o
        .first(|e| matches!(e, Effect::Media(MediaEffect::StopPlayout)))
        .expect("the bot's prompt stops");
    assert!(stop >= ms(1680 + 1800) && stop < ms(4680), "{stop:?}");
    // The caller's audio kept coming to the gateway through the recheck, though nobody else listened.
    let tap_off = o.first(|e| matches!(e, Effect::Media(MediaEffect::Tap(false))));
    assert!(tap_off.is_none_or(|t| t >= stop), "{tap_off:?} {stop:?}");
    assert!(
        o.to_bot().contains(&"machineDetection".to_string()),
        "{:?}",
        o.to_bot()
    );
    let told: Vec<serde_json::Value> = o
        .events("bot-event")
        .into_iter()
        .filter(|e| e["name"] == "machineDetection")
        .map(|e| e["value"].clone())
        .collect();
    assert!(told.contains(&json!("voicemail-prompt-start")), "{told:?}");
}
