//! One conversation's task: dial, ring, answer, end — the state machine of PRODUCT.md 3.1 with the SIP
//! outcome mapping of 3.2 and the end reasons of 3.3. The task owns the conversation; it ends it exactly once:
//! local causes (answer timeout, API hang-up, maximum duration) end it at once and let the SIP layer finish
//! its CANCEL or BYE in the background (a 200 that crosses our CANCEL is ACKed and BYE'd there); remote causes
//! (a final response, the far end's BYE) end it when they arrive.

use crate::botlink::{BotLink, next_from};
use crate::detection::{Detection, Step};
use crate::engine::{Ctx, end, notify};
use crate::invite::request;
use crate::prompts::{Listener, Next, Prompts, fetch_audio, play_fallback, sentences};
use crate::recognition::Recognition;
use outdial_api::engine::AcceptedCall;
use outdial_bots::activity::BotAction;
use outdial_bots::{FromBot, Speech};
use outdial_core::Conversation;
use outdial_core::conversation::{ConversationState, ConversationStatus, ReasonCode};
use outdial_core::time::now_ms;
use outdial_media::{Media, MediaConfig, MediaEvent, RtpSession, parse_answer};
use outdial_sip::CallEvent;
use outdial_speech::SttEvent;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a call collects its media events (the media runs on threads of its own): the media loop hands out
/// the caller's audio three frames (60 ms) at a time.
const MEDIA_POLL: Duration = Duration::from_millis(60);

#[derive(Debug)]
pub enum Command {
    Hangup,
}

pub async fn run(ctx: Arc<Ctx>, call: AcceptedCall, mut commands: mpsc::Receiver<Command>) {
    let AcceptedCall {
        mut conversation,
        bot,
        trunk,
        lease,
        notify_secret,
    } = call;
    let conv = &mut conversation;
    let secret = notify_secret.as_deref();
    let id = conv.id;
    let finish = |conv: &mut Conversation, rc: ReasonCode, reason: String, by: &'static str| {
        // Kept on the task's copy too: the bot is told why the call ended.
        conv.reason_code = Some(rc);
        conv.reason = Some(reason.clone());
        let ctx = ctx.clone();
        let secret = secret.map(str::to_string);
        let mut c = conv.clone();
        async move {
            if let Err(e) = end(&ctx, &mut c, rc, &reason, by, secret).await {
                tracing::error!(conversation = %c.id, "could not record the end of the conversation: {e}");
            }
            tracing::info!(conversation = %c.id, reason_code = ?rc, "conversation ended: {reason}");
        }
    };

    let rtp = match RtpSession::bind(ctx.rtp_ip, ctx.rtp_ports).await {
        Ok(r) => r,
        Err(e) => {
            finish(conv, ReasonCode::Error, e.to_string(), "system").await;
            return;
        }
    };
    let req = match request(conv, &trunk, rtp.offer(now_ms() as u64), &ctx.rtp_ip.to_string()) {
        Ok(r) => r,
        Err(e) => {
            finish(conv, ReasonCode::Error, e, "system").await;
            return;
        }
    };
    let now = now_ms();
    conv.state = ConversationState::Dialing;
    conv.dialing_at = Some(now);
    conv.updated_at = now;
    let dialing = json!({"callId": req.call_id, "requestUri": req.target, "trunk": trunk.name, "destination": req.destination});
    if let Err(e) = ctx.store.transition(conv, "dialing", &dialing, &[]).await {
        tracing::error!(conversation = %id, "cannot record dialing: {e}");
    }
    // The bot hears of the call before the INVITE when it asked for `dialoutInitiated` (PRODUCT.md 7.2).
    let mut link: Option<BotLink> = None;
    if bot.send_events_to_bot.iter().any(|e| e == "dialoutInitiated") {
        match BotLink::open(&ctx, &bot, conv).await {
            Ok(l) => {
                l.dialout_initiated(&ctx, conv).await;
                link = Some(l);
            }
            Err(e) => tracing::warn!(conversation = %id, "dialoutInitiated not sent: {e}"),
        }
    }
    let mut sip = match ctx.agent.call(req) {
        Ok(c) => c,
        Err(e) => {
            finish(conv, ReasonCode::Error, e.to_string(), "system").await;
            return;
        }
    };
    let mut rtp = Some(rtp);
    let mut media: Option<Media> = None;
    // The media runs on threads of its own: its events are collected every MEDIA_POLL (see next_media).
    let mut media_poll = tokio::time::interval(MEDIA_POLL);
    media_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut detection: Option<Detection> = None;
    // `detect` mode, machine found: how long to wait for the beep.
    let beep_wait = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(beep_wait);
    let mut beep_waiting = false;
    let mut prompts = Prompts::default();
    // Barge-in (the bot's `bargeIn`): a voice detector on the caller's audio while a prompt plays.
    let mut barge_in = bot.barge_in;
    let mut listener = Listener::default();
    // No-input timeout (sessionParams.userNoInputTimeoutMS): silence this long after a prompt → noUserInput event.
    let mut no_input_ms: u64 = 0;
    let mut no_input_count = 0u32;
    let no_input = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(no_input);
    let mut no_input_armed = false;
    // The person's words to the bot: from the answer (dialoutStartRecognitionOnConnect, implied by barge-in) or
    // once the bot's first prompt has played.
    let mut recognition = Recognition::default();
    let mut language = bot.language.clone();
    let answer_timeout = Duration::from_secs_f64(conv.request.answer_timeout_sec);
    let answer_deadline = tokio::time::sleep(answer_timeout);
    tokio::pin!(answer_deadline);
    let max_duration = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(max_duration);
    'call: loop {
        // What the bot said, in order: messages are spoken; a hangup or transfer after a message waits for it.
        while let Some(next) = prompts.next() {
            match next {
                Next::Say(text) => match (ctx.tts_for(&bot).await, &media) {
                    (Some(tts), Some(m)) => {
                        // Sentence by sentence: the first is heard while the next ones are synthesised.
                        let parts = sentences(&text);
                        for (n, part) in parts.iter().enumerate() {
                            match tts.synthesize(part, &language, bot.voice_name.as_deref()).await {
                                Ok(pcm) if !pcm.is_empty() => {
                                    let first_ms = pcm.len() / 8;
                                    m.play(pcm);
                                    if prompts.playing {
                                        continue;
                                    }
                                    let data = json!({"chars": text.chars().count(), "parts": parts.len(), "firstPart": n, "firstAudioMs": first_ms});
                                    if let Err(e) = ctx.store.append_event(id, "prompt", &data).await {
                                        tracing::warn!(conversation = %id, "cannot record a prompt: {e}");
                                    }
                                    prompts.playing = true;
                                    no_input_armed = false;
                                    if barge_in {
                                        // The person may interrupt: listen while the prompt plays.
                                        m.tap_audio(true);
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(conversation = %id, "cannot speak the bot's message: {e}")
                                }
                            }
                        }
                    }
                    _ => {
                        tracing::warn!(conversation = %id, "no text-to-speech engine: the bot's message is not spoken")
                    }
                },
                Next::Act(BotAction::Hangup(reason)) => {
                    sip.hangup().await;
                    finish(
                        conv,
                        ReasonCode::BotDisconnected,
                        reason.unwrap_or_else(|| "Bot disconnected".into()),
                        "bot",
                    )
                    .await;
                    break 'call;
                }
                Next::Act(BotAction::Transfer { target, headers, .. }) => {
                    match sip.refer_with(&target, headers).await {
                        Ok(status) if (200..300).contains(&status) => {
                            sip.hangup().await;
                            finish(conv, ReasonCode::Transferred, target, "bot").await;
                            break 'call;
                        }
                        other => {
                            let reason = match other {
                                Ok(s) => format!("REFER answered {s}"),
                                Err(e) => e,
                            };
                            if let Some(l) = &link {
                                l.event(
                                    &ctx,
                                    conv,
                                    "transferStatus",
                                    json!({"status": "failed", "reason": reason}),
                                )
                                .await;
                            }
                        }
                    }
                }
                Next::Act(BotAction::SendDtmf(digits)) => {
                    if let Some(m) = &media {
                        digits
                            .chars()
                            .filter(|c| "0123456789*#ABCDabcd".contains(*c))
                            .take(20)
                            .for_each(|c| m.send_dtmf(c));
                    }
                }
                Next::Act(BotAction::PlayUrl { url, format }) => {
                    match fetch_audio(&ctx.bot_client, &url, format.as_deref()).await {
                        Ok(pcm) => {
                            if let Some(m) = &media {
                                let data = json!({"url": url, "audioMs": pcm.len() / 8});
                                m.play(pcm);
                                prompts.playing = true;
                                no_input_armed = false;
                                if let Err(e) = ctx.store.append_event(id, "prompt", &data).await {
                                    tracing::warn!(conversation = %id, "cannot record a prompt: {e}");
                                }
                            }
                        }
                        Err(reason) => {
                            tracing::warn!(conversation = %id, "playUrl: {reason}");
                            if let Err(e) = ctx
                                .store
                                .append_event(id, "play-url-failed", &json!({"url": url, "reason": reason}))
                                .await
                            {
                                tracing::warn!(conversation = %id, "cannot record a playUrl failure: {e}");
                            }
                        }
                    }
                }
                Next::Act(BotAction::Say(_) | BotAction::Other(_)) => {}
            }
        }
        tokio::select! {
            event = sip.events.recv() => match event {
                None => {
                    finish(conv, ReasonCode::Error, "the SIP call ended without an outcome".into(), "system").await;
                    break;
                }
                Some(CallEvent::Trying) => {}
                Some(CallEvent::Ringing { status, early_media }) => {
                    let data = json!({"sipStatus": status, "earlyMedia": early_media});
                    if conv.state == ConversationState::Dialing {
                        let now = now_ms();
                        conv.state = ConversationState::Ringing;
                        conv.ringing_at = Some(now);
                        conv.updated_at = now;
                        let wanted = conv.request.notify_events.iter().any(|e| e == "ringing");
                        let outbox = if wanted { notify(conv, ConversationStatus::Ringing, secret, now) } else { Vec::new() };
                        if let Err(e) = ctx.store.transition(conv, "ringing", &data, &outbox).await {
                            tracing::error!(conversation = %id, "cannot record ringing: {e}");
                        }
                        if !outbox.is_empty() {
                            ctx.notifier.wake();
                        }
                    } else if let Err(e) = ctx.store.append_event(id, "sip-provisional", &data).await {
                        tracing::warn!(conversation = %id, "cannot record a provisional response: {e}");
                    }
                }
                Some(CallEvent::Answered { sdp, session_id, call_id }) => {
                    let now = now_ms();
                    conv.state = ConversationState::Answered;
                    conv.connect_time = Some(now);
                    conv.ringing_at.get_or_insert(now);
                    conv.updated_at = now;
                    conv.sip_status = Some(200);
                    conv.sbc_session_id = Some(session_id.unwrap_or(call_id));
                    let outbox = notify(conv, ConversationStatus::Answered, secret, now);
                    let data = json!({"sbcSessionID": conv.sbc_session_id});
                    if let Err(e) = ctx.store.transition(conv, "answered", &data, &outbox).await {
                        tracing::error!(conversation = %id, "cannot record the answer: {e}");
                    }
                    ctx.notifier.wake();
                    match parse_answer(&String::from_utf8_lossy(&sdp)) {
                        Ok(answer) => {
                            // Three frames per event: the detector's wake-ups drop to 17 a second, for 40 ms.
                            let cfg = MediaConfig {
                                timeout: ctx.media_timeout,
                                frames_per_event: 3,
                                totals: Some(ctx.send_timing.clone()),
                                runtime: Some(ctx.media_threads.pick()),
                                ..Default::default()
                            };
                            media = rtp.take().map(|r| r.start(&answer, cfg));
                            detection = Detection::new(conv.request.machine_detection, bot.machine_detection_config.as_ref());
                            // The bot's first prompts wait for the verdict.
                            prompts.held = detection.is_some();
                        }
                        Err(e) => {
                            sip.hangup().await;
                            finish(conv, ReasonCode::Error, e.to_string(), "system").await;
                            break;
                        }
                    }
                    max_duration.as_mut().reset(tokio::time::Instant::now() + ctx.max_call_duration);
                    // The bot: opened now (unless it was for dialoutInitiated), then the start event.
                    if link.is_none() {
                        match BotLink::open(&ctx, &bot, conv).await {
                            Ok(l) => link = Some(l),
                            Err(e) => {
                                play_fallback(&ctx, media.as_mut(), &bot, &language, id).await;
                                sip.hangup().await;
                                finish(conv, ReasonCode::Error, e, "system").await;
                                break;
                            }
                        }
                    }
                    if let Some(l) = &link {
                        l.start(&ctx, conv).await;
                    }
                    let streaming = link.as_ref().is_some_and(BotLink::streams);
                    if (bot.dialout_start_recognition_on_connect || bot.barge_in) && !streaming {
                        recognition.start(&ctx, &language, id);
                    }
                }
                Some(CallEvent::Failed { status, reason }) => {
                    conv.sip_status = status;
                    let (rc, by) = match status {
                        Some(s) => (ReasonCode::for_sip_status(s), "callee"),
                        None => (ReasonCode::Error, "system"),
                    };
                    finish(conv, rc, reason, by).await;
                    break;
                }
                Some(CallEvent::Ended { by_remote: true, reason }) => {
                    finish(conv, ReasonCode::ClientDisconnected, reason.unwrap_or_else(|| "Client disconnected".into()), "callee").await;
                    break;
                }
                Some(CallEvent::TransferProgress { status, done }) => {
                    let data = json!({"sipStatus": status, "done": done});
                    if let Err(e) = ctx.store.append_event(id, "transfer-progress", &data).await {
                        tracing::warn!(conversation = %id, "cannot record transfer progress: {e}");
                    }
                }
                Some(CallEvent::Ended { by_remote: false, .. }) => {
                    finish(conv, ReasonCode::Error, "the call was ended".into(), "system").await;
                    break;
                }
            },
            event = next_media(&mut media, &mut media_poll) => match event {
                MediaEvent::Timeout { silent_ms } => {
                    sip.hangup().await;
                    let reason = format!("media timeout: no RTP for {:.1} s", silent_ms as f64 / 1000.0);
                    finish(conv, ReasonCode::Error, reason, "system").await;
                    break;
                }
                MediaEvent::Dtmf(d) => {
                    let data = json!({"digit": d.digit.to_string(), "durationMs": d.duration_ms});
                    if let Err(e) = ctx.store.append_event(id, "dtmf", &data).await {
                        tracing::warn!(conversation = %id, "cannot record a DTMF digit: {e}");
                    }
                    if let Some(l) = &link {
                        l.event(&ctx, conv, "DTMF", json!(d.digit.to_string())).await;
                    }
                }
                MediaEvent::Audio(frame) => {
                    // A streaming bot hears everything; recognition hears the person, but not over a prompt unless
                    // they may interrupt it.
                    let streaming = link.as_ref().is_some_and(BotLink::streams);
                    if let Some(l) = link.as_ref().filter(|_| streaming) {
                        l.send_audio(&frame);
                    } else if !prompts.playing || barge_in {
                        recognition.feed(&frame);
                    }
                    let Some(d) = detection.as_mut().filter(|d| d.listening()) else {
                        if barge_in && prompts.playing {
                            // Barge-in: the person speaks over the prompt (two voiced frames in a row) → it stops.
                            if listener.heard(&frame) && let Some(m) = &media {
                                barge_in_now(&ctx, conv, m).await;
                            }
                            continue;
                        }
                        if no_input_armed {
                            // Waiting for the person after a prompt: any speech disarms the no-input timer.
                            if listener.heard(&frame) {
                                no_input_armed = false;
                                no_input_count = 0;
                            }
                            continue;
                        }
                        // Nobody listens to the caller's audio.
                        if !recognition.active() && !streaming && let Some(m) = &media {
                            m.tap_audio(false);
                        }
                        continue;
                    };
                    let steps: Vec<Step> = frame.chunks(outdial_media::FRAME).flat_map(|f| d.on_frame(f)).collect();
                    let Applied { await_beep, hang_up, verdict, greeting_end } = apply(&ctx, conv, secret, link.as_ref(), steps).await;
                    match verdict.as_deref() {
                        // What was prepared for a person is not said to a machine; the bot speaks after the greeting.
                        Some("machine") => prompts.drop_messages(),
                        Some(_) => prompts.held = false,
                        None => {}
                    }
                    if greeting_end {
                        prompts.held = false;
                    }
                    if await_beep {
                        let wait = Duration::from_secs_f64(conv.request.voicemail_end_timeout_sec);
                        beep_wait.as_mut().reset(tokio::time::Instant::now() + wait);
                        beep_waiting = true;
                    }
                    if let Some(reason) = hang_up {
                        sip.hangup().await;
                        finish(conv, ReasonCode::MachineDetected, reason.into(), "system").await;
                        break;
                    }
                }
                MediaEvent::PlayoutDone => {
                    prompts.playing = false;
                    // The bot has spoken: the person's answer is listened to (by us, unless the bot streams).
                    if !link.as_ref().is_some_and(BotLink::streams) {
                        recognition.start_unless_stopped(&ctx, &language, id);
                    }
                    if recognition.active() && let Some(m) = &media {
                        m.tap_audio(true);
                    }
                    if no_input_ms > 0 {
                        no_input.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(no_input_ms));
                        no_input_armed = true;
                        listener.reset();
                        if let Some(m) = &media {
                            m.tap_audio(true);
                        }
                    }
                    if let Some(l) = link.as_ref().filter(|_| bot.send_events_to_bot.iter().any(|e| e == "playFinished")) {
                        l.event(&ctx, conv, "playFinished", serde_json::Value::Null).await;
                    }
                }
            },
            heard = recognition.next() => match heard {
                SttEvent::Final(t) => {
                    no_input_armed = false;
                    no_input_count = 0;
                    let data = json!({"text": t.text, "confidence": t.confidence, "audioMs": t.audio_ms, "recognitionMs": t.took_ms});
                    if let Err(e) = ctx.store.append_event(id, "recognition", &data).await {
                        tracing::warn!(conversation = %id, "cannot record a recognition: {e}");
                    }
                    metrics::histogram!("outdial_stt_seconds").record(t.took_ms as f64 / 1000.0);
                    if let Some(l) = &link {
                        l.message(&ctx, conv, &t.text, t.confidence).await;
                    }
                }
                SttEvent::Failed(e) => {
                    tracing::warn!(conversation = %id, "speech recognition failed: {e}");
                    if let Err(e) = ctx.store.append_event(id, "recognition-failed", &json!({"reason": e})).await {
                        tracing::warn!(conversation = %id, "cannot record a recognition failure: {e}");
                    }
                }
                SttEvent::SpeechStarted | SttEvent::Partial(_) => {}
            },
            () = &mut no_input, if no_input_armed => {
                no_input_armed = false;
                no_input_count += 1;
                if let Some(l) = &link {
                    l.event(&ctx, conv, "noUserInput", json!(no_input_count)).await;
                }
            }
            () = &mut beep_wait, if beep_waiting => {
                beep_waiting = false;
                if let Some(d) = detection.as_mut() {
                    let since_answer = conv.connect_time.map_or(0, |t| (now_ms() - t).max(0) as u64);
                    let steps = d.on_beep_timeout(since_answer);
                    if apply(&ctx, conv, secret, link.as_ref(), steps).await.greeting_end {
                        prompts.held = false;
                    }
                }
            }
            from_bot = next_from(&mut link) => match from_bot {
                FromBot::Activity(a) => {
                    let (action, params) = outdial_bots::activity::read(&a);
                    for (key, field) in [("botOperationResult", &mut conv.bot_operation_result), ("botOperationData", &mut conv.bot_operation_data)] {
                        if let Some(v) = params.get(key).and_then(|v| v.as_str()) {
                            *field = Some(v.to_string());
                        }
                    }
                    let data = json!({"type": a["type"], "name": a.get("name"), "text": a.get("text"), "params": params});
                    if let Err(e) = ctx.store.append_event(id, "bot-activity", &data).await {
                        tracing::warn!(conversation = %id, "cannot record a bot activity: {e}");
                    }
                    if let Some(b) = params.get("bargeIn").and_then(|v| v.as_bool()) {
                        barge_in = b;
                    }
                    if let Some(ms) = params.get("userNoInputTimeoutMS").and_then(|v| v.as_u64()) {
                        no_input_ms = ms;
                    }
                    if let Some(l) = params.get("language").and_then(|v| v.as_str()) {
                        language = l.to_string();
                    }
                    // Commands about listening and prompts take effect at once; the rest in order.
                    match &action {
                        BotAction::Other(name) if name == "startRecognition" => {
                            recognition.start_by_bot(&ctx, &language, id);
                            if let Some(m) = &media {
                                m.tap_audio(true);
                            }
                        }
                        BotAction::Other(name) if name == "stopRecognition" => recognition.stop_by_bot(),
                        BotAction::Other(name) if name == "abortPrompts" => {
                            prompts.drop_messages();
                            if let (Some(m), true) = (&media, prompts.playing) {
                                m.stop_playout();
                            }
                        }
                        _ => prompts.push(action),
                    }
                }
                FromBot::Audio(bytes) => {
                    // A streaming bot speaks: its audio is played as it comes.
                    if let (Some(l), Some(m)) = (&link, &media) {
                        m.play(l.decode_audio(&bytes));
                        prompts.playing = true;
                    }
                }
                FromBot::AudioEnd => {}
                FromBot::Speech(Speech::Started) => {
                    if barge_in && prompts.playing && let Some(m) = &media {
                        barge_in_now(&ctx, conv, m).await;
                    }
                }
                FromBot::Speech(Speech::Recognition { text, confidence }) => {
                    let data = json!({"text": text, "confidence": confidence, "by": "bot"});
                    if let Err(e) = ctx.store.append_event(id, "recognition", &data).await {
                        tracing::warn!(conversation = %id, "cannot record a recognition: {e}");
                    }
                }
                FromBot::Speech(Speech::Hypothesis(_)) => {}
                FromBot::Failed(e) => {
                    play_fallback(&ctx, media.as_mut(), &bot, &language, id).await;
                    sip.hangup().await;
                    finish(conv, ReasonCode::Error, e.to_string(), "system").await;
                    break;
                }
            },
            () = &mut answer_deadline, if conv.state != ConversationState::Answered => {
                sip.hangup().await;
                let secs = conv.request.answer_timeout_sec;
                finish(conv, ReasonCode::NoAnswer, format!("answer timeout after {secs} s"), "system").await;
                break;
            }
            () = &mut max_duration, if conv.state == ConversationState::Answered => {
                sip.hangup().await;
                finish(conv, ReasonCode::Error, "maximum call duration reached".into(), "system").await;
                break;
            }
            command = commands.recv() => {
                // A closed channel means the engine is going away: hang up as well.
                let _ = command;
                sip.hangup().await;
                finish(conv, ReasonCode::Error, "ended by API".into(), "system").await;
                break;
            }
        }
    }
    if let Some(l) = link {
        let code = conv.reason_code.and_then(|c| serde_json::to_value(c).ok());
        let code = code.as_ref().and_then(|c| c.as_str()).unwrap_or("error");
        l.close(conv.reason.as_deref().unwrap_or("call ended"), code)
            .await;
    }
    if let Some(m) = media {
        record_media_stats(&ctx, id, &m).await;
    }
    lease.release().await;
}

/// The person speaks over the prompt: it stops, and the barge-in goes into the timeline.
async fn barge_in_now(ctx: &Ctx, conv: &Conversation, m: &Media) {
    m.stop_playout();
    let after = conv.connect_time.map_or(0, |t| now_ms() - t);
    if let Err(e) = ctx
        .store
        .append_event(conv.id, "barge-in", &json!({"afterAnswerMs": after}))
        .await
    {
        tracing::warn!(conversation = %conv.id, "cannot record a barge-in: {e}");
    }
}

/// The next event of the media loop, once there is one (never before the answer). The media runs on threads of
/// its own (`sip.media_threads`), so its events are collected at `poll`'s ticks: a media thread waking this task
/// for each event would cost a futex call and a context switch of the runtime's workers each time (measured: 20 %
/// more CPU per call).
async fn next_media(media: &mut Option<Media>, poll: &mut tokio::time::Interval) -> MediaEvent {
    let Some(m) = media.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match m.events.try_recv() {
            Ok(e) => return e,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                poll.tick().await;
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return std::future::pending().await,
        }
    }
}

/// The call's RTP figures, kept in its timeline.
async fn record_media_stats(ctx: &Ctx, id: uuid::Uuid, m: &Media) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &m.stats;
    let (buckets, max_us) = s.send_timing.snapshot();
    let data = json!({
        "packetsSent": s.sent.load(Relaxed),
        "packetsReceived": s.received.load(Relaxed),
        "packetsLost": s.lost.load(Relaxed),
        "packetsLate": s.late.load(Relaxed),
        "packetsDuplicate": s.duplicate.load(Relaxed),
        "datagramsDropped": s.dropped.load(Relaxed),
        "jitterMs": s.jitter_us.load(Relaxed) as f64 / 1000.0,
        "dtmfReceived": s.dtmf_received.load(Relaxed),
        "rtcpSent": s.rtcp_sent.load(Relaxed),
        "rtcpReceived": s.rtcp.load(Relaxed),
        "remote": {
            "fractionLost": s.remote_fraction_lost.load(Relaxed) as f64 / 256.0,
            "packetsLost": s.remote_cumulative_lost.load(Relaxed),
            "jitterMs": s.remote_jitter_us.load(Relaxed) as f64 / 1000.0,
            "rttMs": s.rtt_us.load(Relaxed) as f64 / 1000.0,
        },
        "sendOffset": {
            "maxMs": max_us as f64 / 1000.0,
            "buckets": outdial_media::session::SEND_TIMING_BOUNDS_US
                .iter()
                .map(|b| format!("<{}ms", *b as f64 / 1000.0))
                .chain(std::iter::once(">=20ms".to_string()))
                .zip(buckets.map(serde_json::Value::from))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        },
    });
    if let Err(e) = ctx.store.append_event(id, "media-stats", &data).await {
        tracing::warn!(conversation = %id, "cannot record media statistics: {e}");
    }
}

/// Carries out the detector's steps that do not end the call; returns whether to start waiting for the beep and
/// the reason to hang up, if any.
async fn apply(
    ctx: &Ctx,
    conv: &mut Conversation,
    secret: Option<&str>,
    link: Option<&BotLink>,
    steps: Vec<Step>,
) -> Applied {
    let id = conv.id;
    let mut out = Applied::default();
    for step in steps {
        match step {
            Step::Verdict(record) => {
                let verdict = record["result"].as_str().unwrap_or("unknown").to_string();
                out.verdict = Some(verdict.clone());
                metrics::counter!("outdial_detection_verdicts_total", "verdict" => verdict).increment(1);
                let latency = record["latencyMs"].as_f64().unwrap_or(0.0) / 1000.0;
                metrics::histogram!("outdial_detection_latency_seconds").record(latency);
                conv.detection = Some(record.clone());
                let now = now_ms();
                conv.updated_at = now;
                let wanted = conv.request.notify_events.iter().any(|e| e == "machineDetection");
                let outbox = if wanted {
                    notify(conv, ConversationStatus::MachineDetection, secret, now)
                } else {
                    Vec::new()
                };
                if let Err(e) = ctx
                    .store
                    .transition(conv, "machine-detection", &record, &outbox)
                    .await
                {
                    tracing::error!(conversation = %id, "cannot record the detection verdict: {e}");
                }
                if !outbox.is_empty() {
                    ctx.notifier.wake();
                }
            }
            Step::GreetingEnd(record) => {
                out.greeting_end = true;
                conv.detection = Some(record.clone());
                conv.updated_at = now_ms();
                if let Err(e) = ctx.store.transition(conv, "greeting-end", &record, &[]).await {
                    tracing::error!(conversation = %id, "cannot record the end of the greeting: {e}");
                }
            }
            Step::BotEvent(value) => match link {
                Some(l) => l.event(ctx, conv, "machineDetection", json!(value)).await,
                None => tracing::warn!(conversation = %id, "no bot to tell {value}"),
            },
            Step::AwaitBeep => out.await_beep = true,
            Step::HangUp(reason) => out.hang_up = Some(reason),
        }
    }
    out
}

/// What the detector's steps mean for the rest of the call.
#[derive(Default)]
struct Applied {
    await_beep: bool,
    hang_up: Option<&'static str>,
    verdict: Option<String>,
    greeting_end: bool,
}
