//! What the machine does with the caller's audio and the media loop's events: machine detection
//! (docs/detection.md), barge-in, the no-input timer, recognition, and the end of a prompt.

use crate::detection::Step;
use crate::machine::{Link, Listening, Machine, Phase};
use crate::{BotEffect, Effect, MediaEffect, MediaInput, SpeechEffect, SttInput, TimerId, ToBot};
use outdial_core::conversation::{ConversationStatus, EventKind};
use outdial_core::time::now_ms;
use outdial_core::{HangupBy, ReasonCode};
use outdial_detect::Verdict;
use serde_json::json;
use std::time::Duration;

impl Machine {
    pub(crate) fn on_media(&mut self, e: MediaInput) {
        if let Phase::Fallback {
            reason,
            skip_playout_done,
        } = &mut self.phase
        {
            // The fallback prompt's end (an earlier prompt cut short reports its end first).
            if e == MediaInput::PlayoutDone {
                if *skip_playout_done {
                    *skip_playout_done = false;
                } else {
                    let reason = reason.clone();
                    self.end_with_hangup(ReasonCode::Error, reason, HangupBy::System);
                }
            }
            return;
        }
        if !self.answered() {
            return;
        }
        match e {
            MediaInput::Timeout { silent_ms } => {
                let reason = format!("media timeout: no RTP for {:.1} s", silent_ms as f64 / 1000.0);
                self.end_with_hangup(ReasonCode::Error, reason, HangupBy::System);
            }
            MediaInput::Dtmf { digit, duration_ms } => {
                let d = digit.to_string();
                self.record(EventKind::Dtmf, json!({"digit": d, "durationMs": duration_ms}));
                self.tell_bot("DTMF", json!(d));
            }
            MediaInput::Audio(frame) => self.on_audio(frame),
            MediaInput::PlayoutDone => self.on_playout_done(),
            MediaInput::Hold(held) => self.on_hold(held),
        }
    }

    /// The far end holds the call or resumes it (docs/calls.md, "Hold"): the bot hears `hold` / `resume`, the
    /// person's recognition pauses while held (the media loop suspends its timeout).
    fn on_hold(&mut self, held: bool) {
        if held == self.held {
            return;
        }
        self.held = held;
        if held {
            self.listen_after_hold = self.listening == Listening::On;
            if self.listen_after_hold {
                self.emit(Effect::Speech(SpeechEffect::StopRecognition));
                self.listening = Listening::Off;
            }
            self.tell_bot("hold", serde_json::Value::Null);
        } else {
            self.tell_bot("resume", serde_json::Value::Null);
            if std::mem::take(&mut self.listen_after_hold) && self.listening == Listening::Off {
                self.listen();
            }
        }
    }

    fn streams(&self) -> bool {
        self.link == (Link::Open { streams: true })
    }

    /// The caller's audio: to a streaming bot, to recognition, to the detector, to barge-in and no-input.
    fn on_audio(&mut self, frame: Vec<i16>) {
        let streams = self.streams();
        let playing = self.speaking.playing();
        // Recognition hears the person, but not over a prompt unless they may interrupt it.
        let recognise = !streams
            && matches!(self.listening, Listening::On | Listening::ForDetection)
            && (!playing || self.barge_in);
        self.listen_to(&frame, streams, playing);
        // The frame itself goes last, where it is needed (no copy of it).
        if self.is_over() {
            return;
        }
        if streams {
            self.emit(Effect::Bot(BotEffect::Audio(frame)));
        } else if recognise {
            self.emit(Effect::Speech(SpeechEffect::Feed(frame)));
        }
    }

    /// What the gateway itself hears in the caller's audio: detection, barge-in, no-input.
    fn listen_to(&mut self, frame: &[i16], streams: bool, playing: bool) {
        let mut rechecking = false;
        if let Some(d) = self.detection.as_mut().filter(|d| d.listening()) {
            let steps: Vec<Step> = frame.chunks(crate::FRAME).flat_map(|f| d.on_frame(f)).collect();
            rechecking = d.rechecking();
            self.apply(steps);
            // While a person's verdict is rechecked the bot talks with them: barge-in and no-input go on.
            if !rechecking || self.is_over() {
                return;
            }
        }
        if self.barge_in && playing {
            // Barge-in: the person speaks over the prompt (two voiced frames in a row) → it stops.
            if self.listener.heard(frame) {
                self.barge_in_now();
            }
            return;
        }
        if self.no_input_armed {
            // Waiting for the person after a prompt: any speech disarms the no-input timer.
            if self.listener.heard(frame) {
                self.disarm_no_input();
            }
            return;
        }
        if self.listening != Listening::On && !streams && !rechecking {
            // Nobody listens to the caller's audio.
            self.tap(false);
        }
    }

    /// The person speaks over the prompt: it stops, and the barge-in goes into the timeline.
    pub(crate) fn barge_in_now(&mut self) {
        self.emit(Effect::Media(MediaEffect::StopPlayout));
        let after = self.conv.connect_time.map_or(0, |t| now_ms() - t);
        self.record(EventKind::BargeIn, json!({"afterAnswerMs": after}));
    }

    pub(crate) fn disarm_no_input(&mut self) {
        if self.no_input_armed {
            self.no_input_armed = false;
            self.emit(Effect::CancelTimer(TimerId::NoInput));
        }
        self.no_input_count = 0;
    }

    fn on_playout_done(&mut self) {
        if !self.speaking.on_playout_done() {
            return;
        }
        self.bot_audio_played();
        // The bot has spoken: the person's answer is listened to (by us, unless the bot streams).
        if !self.streams() && self.listening == Listening::Off {
            self.listen();
        } else if self.listening == Listening::On {
            self.tap(true);
        }
        if self.no_input_ms > 0 {
            self.no_input_armed = true;
            self.listener.reset();
            self.emit(Effect::SetTimer(
                TimerId::NoInput,
                Duration::from_millis(self.no_input_ms),
            ));
            self.tap(true);
        }
        if self.wants("playFinished") {
            self.tell_bot("playFinished", serde_json::Value::Null);
        }
        self.pump();
    }

    /// Carries out the detector's steps.
    pub(crate) fn apply(&mut self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Verdict {
                    verdict,
                    record,
                    revised,
                } => {
                    if self.listening == Listening::ForDetection {
                        self.emit(Effect::Speech(SpeechEffect::StopRecognition));
                        self.listening = Listening::Draining;
                    }
                    self.conv.detection = Some(record.clone());
                    self.conv.updated_at = now_ms();
                    let wanted = self
                        .conv
                        .request
                        .notify_events
                        .iter()
                        .any(|e| e == "machineDetection");
                    let notify = wanted.then_some(ConversationStatus::MachineDetection);
                    self.transition(EventKind::MachineDetection, record, notify);
                    if verdict == Verdict::Machine && revised {
                        // A person's verdict turned out a greeting: the bot stops talking to it, and speaks
                        // again after the greeting (docs/detection.md, "A person's hello, rechecked").
                        self.abort_prompts();
                        self.prompts.held = true;
                    } else if verdict == Verdict::Machine {
                        // What was prepared for a person is not said to a machine; the bot speaks after the
                        // greeting.
                        self.prompts.drop_messages();
                    } else {
                        self.prompts.held = false;
                    }
                }
                Step::GreetingEnd(record) => {
                    self.conv.detection = Some(record.clone());
                    self.conv.updated_at = now_ms();
                    self.transition(EventKind::GreetingEnd, record, None);
                    self.prompts.held = false;
                }
                Step::BotEvent(value) => self.tell_bot("machineDetection", json!(value)),
                Step::Transcribe(audio) => {
                    if self.streams() || self.listening != Listening::Off {
                        // The bot hears the audio itself (or recognition is busy): no words for the detector.
                        let steps = self.detection.as_mut().map(|d| d.on_no_transcript());
                        self.apply(steps.unwrap_or_default());
                        return;
                    }
                    self.listening = Listening::ForDetection;
                    let language = self.language.clone();
                    self.emit(Effect::Speech(SpeechEffect::StartRecognition {
                        language,
                        partials: true,
                        for_detection: true,
                    }));
                    self.tap(true);
                    self.emit(Effect::Speech(SpeechEffect::Feed(audio)));
                }
                Step::AwaitBeep => {
                    let wait = Duration::from_secs_f64(self.conv.request.voicemail_end_timeout_sec);
                    self.emit(Effect::SetTimer(TimerId::BeepWait, wait));
                }
                Step::HangUp(reason) => {
                    self.end_with_hangup(ReasonCode::MachineDetected, reason.into(), HangupBy::System);
                    return;
                }
            }
        }
        self.pump();
    }

    /// `voicemailEndTimeoutSec` passed without a beep.
    pub(crate) fn on_beep_timeout(&mut self) {
        let since_answer = self.conv.connect_time.map_or(0, |t| (now_ms() - t).max(0) as u64);
        if let Some(d) = self.detection.as_mut() {
            let steps = d.on_beep_timeout(since_answer);
            self.apply(steps);
        }
    }

    pub(crate) fn on_stt(&mut self, e: SttInput) {
        if matches!(self.listening, Listening::ForDetection | Listening::Draining) {
            self.on_detection_words(e);
            return;
        }
        match e {
            SttInput::Final {
                text,
                confidence,
                audio_ms,
                took_ms,
            } => {
                self.disarm_no_input();
                let data = json!({"text": text, "confidence": confidence, "audioMs": audio_ms, "recognitionMs": took_ms});
                self.record(EventKind::Recognition, data);
                let data = json!({"type": "message", "text": text, "confidence": confidence});
                self.send_to_bot(ToBot::Message { text, confidence }, data);
            }
            SttInput::Failed(reason) => {
                tracing::warn!(conversation = %self.conv.id, "speech recognition failed: {reason}");
                self.record(EventKind::RecognitionFailed, json!({"reason": reason}));
            }
            SttInput::Closed => {
                if self.listening == Listening::On {
                    self.listening = Listening::Off;
                }
            }
            // docs/bots.md, "Events to the bot": partial transcripts while the person speaks, for bots that list
            // `speechHypothesis`. Not kept in the timeline (several a second); the final text is.
            SttInput::Partial(text) => {
                if self.wants("speechHypothesis") && matches!(self.link, Link::Open { .. }) {
                    let value = json!({"text": text});
                    self.emit(Effect::Bot(BotEffect::Send(ToBot::Event {
                        name: "speechHypothesis",
                        value,
                    })));
                }
            }
            SttInput::SpeechStarted => {}
        }
    }

    /// Recognition for the second opinion: the words go to the detector (and into the timeline), never to the bot.
    fn on_detection_words(&mut self, e: SttInput) {
        let draining = self.listening == Listening::Draining;
        let steps = match e {
            SttInput::Final { text, .. } if !draining => {
                self.record(
                    EventKind::Recognition,
                    json!({"text": text, "purpose": "machine-detection"}),
                );
                self.detection.as_mut().map(|d| d.on_transcript(&text, true))
            }
            SttInput::Partial(text) if !draining => {
                self.detection.as_mut().map(|d| d.on_transcript(&text, false))
            }
            SttInput::Failed(reason) if !draining => {
                tracing::warn!(conversation = %self.conv.id, "speech recognition for machine detection failed: {reason}");
                self.record(
                    EventKind::RecognitionFailed,
                    json!({"reason": reason, "purpose": "machine-detection"}),
                );
                self.detection.as_mut().map(|d| d.on_no_transcript())
            }
            SttInput::Closed => {
                self.listening = Listening::Off;
                self.detection.as_mut().map(|d| d.on_no_transcript())
            }
            _ => None,
        };
        self.apply(steps.unwrap_or_default());
    }

    /// Whether a prompt's audio is being sent: for the streaming bot's barge-in.
    pub(crate) fn prompt_playing(&self) -> bool {
        self.speaking.playing()
    }
}
